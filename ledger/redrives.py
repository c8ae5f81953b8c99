"""A redrive: finance's correction of a dead letter, built and checked the same way for
the API, the dashboard and the CLI (docs/decisions/0011-dead-letter-redrive.md).

The corrected event is an ordinary event of a publisher's type whose id is
``redrive:<the dead letter's key>`` and whose producer is its author
(``finance:<token name>``), both set here; its business time defaults to the original's.
Refusals say what to change (``Refused``: 404 for an unknown dead letter, 422 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ledger.domain.events import Event, InvalidEvent
from ledger.domain.permissions import (
    WRITER,
    Role,
    redrive_id,
    squatted_command_id,
)
from ledger.domain.validation import problem
from ledger.jsonform import event_from_json, event_to_json
from ledger.read import redrives
from ledger.read.models import Change, DeadLetterDetail

SET_BY_SERVER = ("event_id", "producer")
# a second redrive of the same content by another finance user is the same request
IGNORED_ON_RETRY = ("producer",)


class Refused(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Prepared:
    dead: DeadLetterDetail
    event: Event
    changes: tuple[Change, ...]

    @property
    def redrive_of(self) -> str:
        return self.dead.key


def dead_letter_to_redrive(conn: Connection, dead_letter_id: int) -> DeadLetterDetail:
    """The dead letter, if it may be redriven (Refused: 404 unknown, 422 finance's)."""
    dead = redrives.dead_letter(conn, dead_letter_id)
    if dead is None:
        raise Refused(404, f"no dead letter {dead_letter_id}")
    if dead.event_type is not None and WRITER.get(dead.event_type) is Role.FINANCE:
        raise Refused(
            422,
            f"dead letter {dead_letter_id} is the rejection of finance's own "
            f"{dead.event_type}: submit a new command instead of redriving it",
        )
    return dead


def prepare(conn: Connection, dead_letter_id: int, corrected: Any, author: str) -> Prepared:
    """The redrive of dead letter ``dead_letter_id`` as ``corrected`` (a JSON object: the
    event's JSON form) says, by ``author``; raises Refused."""
    dead = dead_letter_to_redrive(conn, dead_letter_id)
    if not isinstance(corrected, dict):
        raise Refused(422, "event: expected the corrected event's JSON form, an object")
    event_id = redrive_id(dead.key)
    for name, value in (("event_id", event_id), ("producer", author)):
        if name in corrected and corrected[name] != value:
            raise Refused(
                422,
                f"event.{name} is set by the server ({value!r}): leave it out "
                f"(given {str(corrected[name])[:80]!r})",
            )
    event_type = corrected.get("type")
    if not isinstance(event_type, str) or WRITER.get(event_type) is not Role.PUBLISHER:
        raise Refused(
            422,
            f"event.type {str(event_type)[:40]!r}: a redrive is of a publisher's event type "
            f"({', '.join(sorted(t for t, r in WRITER.items() if r is Role.PUBLISHER))})",
        )
    form = {**corrected, "event_id": event_id, "producer": author}
    if "occurred_at" not in form:  # the business time stays the original's by default
        original = redrives.original_form(dead)
        if original is not None:
            form["occurred_at"] = original["occurred_at"]
    try:
        event = event_from_json(form)
    except InvalidEvent as bad:
        raise Refused(422, f"{bad.reason}: {bad.message}") from None
    bad_value = problem(event)
    if bad_value is not None:
        raise Refused(422, f"{bad_value[0]}: {bad_value[1]}")
    squatted = squatted_command_id(event.TYPE, event.event_id, finance_path=True)
    if squatted is not None:  # pragma: no cover - the checks above rule it out
        raise Refused(422, squatted)
    changes = redrives.changes_of(dead, event_to_json(event))
    return Prepared(dead, event, changes)


def conflict_message(prepared: Prepared, message: str | None) -> str:
    return (
        f"this dead letter was already redriven as {prepared.event.event_id}, with other "
        f"content ({message or 'another request'}); a redrive is made once"
    )
