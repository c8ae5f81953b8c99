"""Which Kafka topic carries which event type (the layout is explained in docs/topics.md).

Buyer-keyed events (clicks, orders, completions, refunds) go to the many-partition
``orders`` topic; the events SPEC §4.5 treats as barriers (plans, enrollments, settlement
runs, payouts) go to the ``accounts`` topic, one partition by default, so they keep one
total order. Records are keyed by ``Event.ordering_key()``.
"""

from __future__ import annotations

from ledger.config import Topics
from ledger.domain.events import EVENT_TYPES, Event
from ledger.domain.permissions import redrive_of

# Where each event type goes follows from the type itself (``Event.BARRIER``).
ORDERS_EVENTS = frozenset(t for t, cls in EVENT_TYPES.items() if not cls.BARRIER)
ACCOUNTS_EVENTS = frozenset(t for t, cls in EVENT_TYPES.items() if cls.BARRIER)
# Default partition counts for deploy scripts and tests: many for buyer traffic, one for the
# barrier events, whose relative order must be total.
DEFAULT_PARTITIONS = {"orders": 8, "accounts": 1}


class UnknownEventType(ValueError):
    """No topic is defined for this event type."""


def topic_for(event: Event | str, topics: Topics) -> str:
    """The topic name for ``event`` (or an event type) under the configured ``topics``.
    A redrive (finance's correction of a dead letter, ledger/domain/permissions.py) goes
    to the accounts topic whatever its type: only the finance principal writes there, so
    the consumer can tell finance's correction from a publisher's forgery by the topic."""
    if isinstance(event, Event):
        if redrive_of(event.event_id) is not None:
            return topics.accounts
        event_type = event.TYPE
    else:
        event_type = event
    if event_type in ORDERS_EVENTS:
        return topics.orders
    if event_type in ACCOUNTS_EVENTS:
        return topics.accounts
    raise UnknownEventType(f"no topic for event type {event_type!r}")


def is_barrier(event_type: str) -> bool:
    """True for the accounts-topic events that SPEC §4.5 never reorders."""
    return event_type in ACCOUNTS_EVENTS


def record_key(event: Event) -> bytes:
    """The Kafka record key of an event: its ordering key, UTF-8."""
    return event.ordering_key().encode("utf-8")


# Barrier markers (docs/ordering.md): a record with this header and an empty value, sent
# to every orders partition once a barrier is acknowledged, carrying the barrier's offset
# in the accounts topic as ASCII decimal.
MARKER_HEADER = "ledger.barrier"


def marker_headers(barrier_offset: int) -> list[tuple[str, bytes]]:
    return [(MARKER_HEADER, str(barrier_offset).encode("ascii"))]


def marker_offset(headers: object) -> int | None:
    """The barrier offset a record's headers carry, None if it is no marker; raises
    ValueError for a marker header whose value is not a non-negative decimal."""
    if not headers:
        return None
    for name, value in headers:  # type: ignore[attr-defined]
        if name == MARKER_HEADER:
            text = bytes(value or b"").decode("ascii", "replace")
            if not text.isdigit() or len(text) > 18:
                raise ValueError(f"marker header {MARKER_HEADER}={text[:40]!r} is not an offset")
            return int(text)
    return None
