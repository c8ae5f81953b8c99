"""Dead letters in the database: rows built from ``DeadLetter`` values (ledger/dead_letters.py),
made storable, and inserted once per record.

A dead letter's idempotency key is where the record came from and what it held, so the
same record ingested again (a file or a topic read twice) is not a second dead letter.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from ledger.dead_letters import DeadLetter
from ledger.domain.validation import valid_event_id
from ledger.store import tables as t
from ledger.store.store import Store

MAX_MESSAGE = 2000  # characters of a dead letter's message; the payload is kept whole


def insert_dead_letters(
    store: Store, conn: Connection, dead_letters: Sequence[DeadLetter]
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Insert ``dead_letters``, skipping any whose record is already a dead letter.

    Returns (the dead letters stored, as stored: with their ids and their text as
    kept; the ones skipped, as given), each in the order given."""
    if not dead_letters:
        return [], []
    ids = store.allocate(conn, "dead_letters", len(dead_letters))
    rows = [dead_letter_row(dead, dead_id) for dead, dead_id in zip(dead_letters, ids, strict=True)]
    stmt = (
        store.insert(t.dead_letters)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(t.dead_letters.c.id)
    )
    inserted = set(conn.execute(stmt, rows).scalars())
    stored, skipped = [], []
    for dead, row in zip(dead_letters, rows, strict=True):
        if row["id"] in inserted:
            stored.append(_as_stored(dead, row))
        else:
            skipped.append(dead)
    return stored, skipped


def dead_letter_row(dead: DeadLetter, dead_id: int) -> dict[str, Any]:
    """The ``dead_letters`` row of ``dead``: a record that never became an event keeps its
    raw text made storable; an unusable event id is left out; a long message is cut."""
    message, payload = dead.message, dead.payload
    if dead.undecodable:
        message, payload = storable_text(message), storable_text(payload)
    if len(message) > MAX_MESSAGE:  # it may quote a hostile value at length
        message = message[: MAX_MESSAGE - 1] + "…"
    return {
        "id": dead_id,
        "event_id": storable_id(dead.event_id),
        "event_type": dead.event_type,
        "source": dead.source,
        "reason": dead.reason,
        "message": message,
        "payload": payload,
        "recorded_at": dead.recorded_at,
        "dedup_key": dead_letter_key(dead.source, payload),
    }


def _as_stored(dead: DeadLetter, row: dict[str, Any]) -> DeadLetter:
    return dataclasses.replace(
        dead, id=row["id"], event_id=row["event_id"], message=row["message"], payload=row["payload"]
    )


def dead_letter_key(source: str, payload: str) -> str:
    """The idempotency key of a dead letter: where the record came from (file:line,
    topic/partition@offset) and what it held. The same record again has the same key."""
    return hashlib.sha256(f"{source}\n{payload}".encode("utf-8", "surrogatepass")).hexdigest()


def storable_text(text: str) -> str:
    """PostgreSQL text holds no NUL and no lone surrogate: escape them, keep the rest."""
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text


def storable_id(event_id: str | None) -> str | None:
    """``event_id``, or None when it is no usable event id (it could not be looked up)."""
    return event_id if event_id is not None and valid_event_id(event_id) else None
