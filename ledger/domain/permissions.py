"""Least authority (SPEC §4.7): which role may submit which event type.

One table, read by every path that writes: the HTTP API (a token's role), the Kafka
consumer (a topic's writer principal, docs/security.md) and the docs. Buyer activity and
enrollments come from the publishing services; plans, settlement runs and payouts move
money on finance's decision only. Auditors write nothing.

Command event ids: finance's commands derive their event ids from the command's id
(``payout-requested:{payout_id}``, …) so that a retried command is recognised. Those id
prefixes are finance's alone: an event of another role carrying one would squat the id
and make finance's later command look like a duplicate.

Redrives (docs/decisions/0011-dead-letter-redrive.md): finance corrects a dead letter and
resubmits it as a new event of a publisher type whose id is ``redrive:<the dead letter's
dedup key>`` (64 lowercase hex). That id space is finance's too, but only on the paths
that carry finance's authority: the redrive endpoint, the accounts topic (only the
finance principal writes it), and the operator's files. Everywhere else (POST /events,
the orders topic) a redrive id is a squat. A finance event never carries one: finance's
own commands are corrected by a new command.
"""

from __future__ import annotations

from enum import StrEnum, unique
from types import MappingProxyType

from ledger.domain.events import EVENT_TYPES


@unique
class Role(StrEnum):
    PUBLISHER = "publisher"
    FINANCE = "finance"
    AUDITOR = "auditor"


# event type -> the one role that may submit it
WRITER: MappingProxyType[str, Role] = MappingProxyType(
    {
        "sharer_enrolled": Role.PUBLISHER,
        "click_recorded": Role.PUBLISHER,
        "order_placed": Role.PUBLISHER,
        "order_completed": Role.PUBLISHER,
        "refund_issued": Role.PUBLISHER,
        "plan_published": Role.FINANCE,
        "settlement_run": Role.FINANCE,
        "payout_requested": Role.FINANCE,
        "payout_settled": Role.FINANCE,
        "payout_failed": Role.FINANCE,
    }
)
assert set(WRITER) == set(EVENT_TYPES), "every event type needs exactly one writer role"

# the event-id prefixes of finance's commands (ledger/api/routes_commands.py builds them)
COMMAND_ID_PREFIXES: tuple[str, ...] = (
    "plan-published:",
    "settlement-run:",
    "payout-requested:",
    "payout-settled:",
    "payout-failed:",
)


REDRIVE_PREFIX = "redrive:"
_HEX = frozenset("0123456789abcdef")


def redrive_id(dead_letter_key: str) -> str:
    """The event id of the redrive of the dead letter whose dedup key is ``dead_letter_key``."""
    return REDRIVE_PREFIX + dead_letter_key


def redrive_of(event_id: str | None) -> str | None:
    """The dead letter's key a well-formed redrive id names, else None."""
    if event_id is None or not event_id.startswith(REDRIVE_PREFIX):
        return None
    key = event_id[len(REDRIVE_PREFIX) :]
    return key if len(key) == 64 and set(key) <= _HEX else None


def may_submit(role: str, event_type: str) -> bool:
    """True when ``role`` may submit an event of ``event_type`` (unknown types: False)."""
    return WRITER.get(event_type) == role


def event_types_of(role: str) -> frozenset[str]:
    """The event types ``role`` may submit (empty for auditors and unknown roles)."""
    return frozenset(t for t, writer in WRITER.items() if writer == role)


def is_command_id(event_id: str) -> bool:
    """True when ``event_id`` lies in the id space reserved for finance's commands."""
    return event_id.startswith(COMMAND_ID_PREFIXES)


def is_reserved_id(event_id: str) -> bool:
    """True when ``event_id`` lies in finance's id space: its commands' or its redrives'."""
    return event_id.startswith((*COMMAND_ID_PREFIXES, REDRIVE_PREFIX))


def squatted_command_id(event_type: str, event_id: str, *, finance_path: bool) -> str | None:
    """Why an event must not be logged under ``event_id``, or None. An event of a type
    finance does not submit, carrying an id in finance's command space, would use up the
    id of a later command (which would then answer "duplicate" and move nothing); a
    redrive id is finance's correction of a dead letter, so it is accepted only on a path
    carrying finance's authority (``finance_path``: the redrive endpoint, the accounts
    topic, the operator's files), only well-formed, and only on a publisher's type. Such
    an event is refused before it is logged, on every path (API, Kafka, files)."""
    writer = WRITER.get(event_type)
    if event_id.startswith(REDRIVE_PREFIX):
        if writer is Role.FINANCE:
            return (
                f"event id {event_id!r} is a redrive id: a {event_type} is finance's own "
                "command, corrected by a new command, not redriven"
            )
        if redrive_of(event_id) is None:
            return (
                f"event id {event_id!r} starts with {REDRIVE_PREFIX!r} but is no redrive id "
                f"({REDRIVE_PREFIX}<a dead letter's 64 lowercase hex key>)"
            )
        if not finance_path:
            return (
                f"event id {event_id!r} lies in the id space of finance's redrives: only "
                "finance redrives a dead letter (POST /api/v1/dead-letters/{id}/redrive)"
            )
        return None
    if writer is Role.FINANCE or not is_command_id(event_id):
        return None
    return (
        f"event id {event_id!r} lies in the id space of finance's commands "
        f"({', '.join(COMMAND_ID_PREFIXES)}): a {event_type} event may not use it"
    )
