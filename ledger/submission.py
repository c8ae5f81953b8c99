"""Submitting one event once, whoever asks (the API's commands and events, a redrive from
the API, the dashboard or the CLI): an event id is its idempotency key, as payment APIs
treat one. The same request again answers the first outcome (a rejection stays a
rejection, and the answer says it was replayed); another request under the same id is a
``conflict`` (``idempotency_key_reused``); else the event goes to the sink (embedded:
applied now; Kafka: queued)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.domain.events import Event
from ledger.payload import load_event
from ledger.read import operations
from ledger.read.models import LoggedOutcome
from ledger.store.store import Store

CONFLICT = "idempotency_key_reused"


class Sink(Protocol):
    def submit(self, event: Event, source: str) -> dict[str, str | None]: ...


@dataclass(frozen=True)
class Submitted:
    outcome: dict[str, Any]  # event_id, outcome, reason, message
    replayed: bool  # answered from the event log: the id was used before for this request


def differences(logged: LoggedOutcome, event: Event, ignore: Collection[str]) -> str:
    """The fields in which the event logged under ``event``'s id differs from ``event``
    (fields in ``ignore`` aside), named but not shown (the first request may be someone
    else's); empty when they are the same request."""
    if logged.event_type != event.TYPE:
        return "another event type"
    try:
        first = load_event(logged.payload)
    except Exception:  # noqa: BLE001 - an unreadable row cannot be the same request
        return "an event that cannot be read back"
    differing = [
        f.name
        for f in dataclasses.fields(event)
        if f.name not in ignore and getattr(first, f.name) != getattr(event, f.name)
    ]
    return f"it differs in {', '.join(differing)}" if differing else ""


def first_outcome(store: Store, event: Event, ignore: Collection[str]) -> Submitted | None:
    """The answer for an id already used: the first outcome for the same request, a
    conflict for another one; None when the id is unused."""
    with store.read() as conn:
        logged = operations.logged_outcome(conn, event.event_id)
    if logged is None:
        return None
    different = differences(logged, event, ignore)
    if different:
        return Submitted(
            {
                "event_id": event.event_id,
                "outcome": "conflict",
                "reason": CONFLICT,
                "message": f"{event.event_id} was used before for another request "
                f"({different}): a new request needs a new id",
            },
            False,
        )
    return Submitted(
        {
            "event_id": event.event_id,
            "outcome": logged.outcome,
            "reason": logged.reason,
            "message": logged.message,
        },
        True,
    )


def submit_once(
    store: Store, sink: Sink, event: Event, source: str, ignore: Collection[str]
) -> Submitted:
    """Submit ``event`` once (see the module's docstring); the sink's errors propagate
    (SinkUnavailable: nothing applied, the caller may retry)."""
    first = first_outcome(store, event, ignore)
    if first is not None:
        return first
    outcome = sink.submit(event, source)
    if outcome["outcome"] == "duplicate":  # a concurrent request logged the id first
        first = first_outcome(store, event, ignore)
        if first is not None:
            return first
    return Submitted(dict(outcome), False)
