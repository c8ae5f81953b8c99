"""Dead letters and their redrives (docs/decisions/0011-dead-letter-redrive.md).

A redrive is an ordinary event whose id is ``redrive:<the dead letter's dedup key>``
(ledger/domain/permissions.py), so the link needs no table of its own: the dead letter's
key names its redrive in the event log, and a redrive's id names the dead letter it
corrects. Both are kept as they were written; this module only joins them for reading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, exists, literal, select

from ledger.domain.changes import diff
from ledger.domain.permissions import REDRIVE_PREFIX, redrive_id, redrive_of
from ledger.jsonform import event_from_json, event_to_json
from ledger.payload import load_event
from ledger.read.models import Change, DeadLetter, DeadLetterDetail, Redrive, Redriven
from ledger.store import tables as t
from ledger.store.dead_letters import dead_letter_key

_d, _e = t.dead_letters, t.events
DEAD_LETTER_COLUMNS = (
    _d.c.id,
    _d.c.event_id,
    _d.c.event_type,
    _d.c.source,
    _d.c.reason,
    _d.c.message,
    _d.c.payload,
    _d.c.recorded_at,
    _d.c.dedup_key,
)
# set by the server on a redrive: not part of what finance corrected
NOT_COMPARED = ("event_id", "producer")


def redriven_clause() -> ColumnElement[bool]:
    """True for a dead letter whose redrive is in the event log (rows written before
    revision 0003 have no stored key and count as not redriven here)."""
    return exists().where(_e.c.event_id == literal(REDRIVE_PREFIX) + _d.c.dedup_key)


def key_of(row: Any) -> str:
    """The dead letter's dedup key: stored, or (rows before revision 0003) computed."""
    key: str | None = row.dedup_key
    return key if key is not None else dead_letter_key(row.source, row.payload)


def with_redrives(conn: Connection, rows: Sequence[Any]) -> list[DeadLetter]:
    """``rows`` (DEAD_LETTER_COLUMNS) as dead letters, each with its redrive's outcome."""
    keys = [key_of(r) for r in rows]
    found: dict[str, Redriven] = {}
    if keys:
        ids = [redrive_id(k) for k in keys]
        for event_id, outcome in conn.execute(
            select(_e.c.event_id, _e.c.outcome).where(_e.c.event_id.in_(ids))
        ):
            found[event_id] = Redriven(event_id, outcome)
    return [
        DeadLetter(
            r.id,
            r.event_id,
            r.event_type,
            r.source,
            r.reason,
            r.message,
            r.payload,
            r.recorded_at,
            key,
            redrive_of(r.event_id),
            found.get(redrive_id(key)),
        )
        for r, key in zip(rows, keys, strict=True)
    ]


def dead_letter(conn: Connection, dead_letter_id: int) -> DeadLetterDetail | None:
    """One dead letter, as stored, with its redrive (None: no such dead letter)."""
    row = conn.execute(select(*DEAD_LETTER_COLUMNS).where(_d.c.id == dead_letter_id)).first()
    if row is None:
        return None
    [dead] = with_redrives(conn, [row])
    fields = {name: getattr(dead, name) for name in dead.__dataclass_fields__}
    return DeadLetterDetail(**fields, redrive=_redrive(conn, dead))


def _redrive(conn: Connection, dead: DeadLetter) -> Redrive | None:
    if dead.redriven is None:
        return None
    e = _e
    row = conn.execute(
        select(e.c.payload, e.c.recorded_at, e.c.source, e.c.outcome).where(
            e.c.event_id == dead.redriven.event_id
        )
    ).first()
    if row is None:  # pragma: no cover - the list query just found it; the log is append-only
        return None
    event = load_event(row.payload)
    reason = None
    if row.outcome == "rejected":  # its own dead letter says why
        reason = conn.execute(
            select(_d.c.reason).where(_d.c.dedup_key == dead_letter_key(row.source, row.payload))
        ).scalar()
    return Redrive(
        event.event_id,
        dead.key,
        event.producer,
        row.recorded_at,
        row.outcome,
        reason,
        changes_of(dead, event_to_json(event)),
    )


def original_form(dead: DeadLetter | DeadLetterDetail) -> dict[str, Any] | None:
    """The dead letter's event in its JSON form (docs/events.md), or None when it never
    became an event (its payload is the raw record)."""
    if dead.event_type is None:
        return None
    try:  # the stored form (a rejection), else the JSON form (a file's refused line)
        return event_to_json(load_event(dead.payload))
    except Exception:  # noqa: BLE001 - tried as the JSON form next
        pass
    try:
        return event_to_json(event_from_json(json.loads(dead.payload)))
    except Exception:  # noqa: BLE001 - a payload that does not load is shown raw
        return None


def changes_of(
    dead: DeadLetter | DeadLetterDetail, corrected: dict[str, Any]
) -> tuple[Change, ...]:
    """What the corrected event's JSON form changed of the dead letter's (event_id and
    producer left out: the server sets them); an undecodable original is replaced whole,
    its raw text as ``before`` at path ""."""
    after = {k: v for k, v in corrected.items() if k not in NOT_COMPARED}
    before_form = original_form(dead)
    if before_form is None:
        return (Change("replace", "", dead.payload, after),)
    before = {k: v for k, v in before_form.items() if k not in NOT_COMPARED}
    return tuple(Change(**c) for c in diff(_plain(before), _plain(after)))


def _plain(value: dict[str, Any]) -> Any:
    """JSON values as JSON has them (tuples become lists)."""
    return json.loads(json.dumps(value))


def redrive_event(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """The logged redrive's stored form (what its page links to), or None."""
    payload = conn.execute(select(_e.c.payload).where(_e.c.event_id == event_id)).scalar()
    if payload is None:
        return None
    found: dict[str, Any] = json.loads(payload)
    return found


def dead_letter_id_of(conn: Connection, event_id: str) -> int | None:
    """The dead letter a rejected redrive became (the next link of the chain)."""
    row = conn.execute(select(_e.c.source, _e.c.payload).where(_e.c.event_id == event_id)).first()
    if row is None:
        return None
    key = dead_letter_key(row.source, row.payload)
    found: int | None = conn.execute(select(_d.c.id).where(_d.c.dedup_key == key)).scalar()
    return found
