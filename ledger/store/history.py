"""The stored history as an export reads it and a replay of an export checks it: chain
heads, the event log page by page, and the dead letters (one snapshot: the caller's
connection)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select

from ledger.store import schema
from ledger.store import tables as t

PAGE = 5_000  # event-log rows per query


def chain_heads(conn: Connection) -> Sequence[Row[Any]]:
    """Every chain's head: (chain, chain_seq, hash, events_seq, events_hash)."""
    return conn.execute(select(t.chain_heads)).all()


def dead_letter_fields(conn: Connection) -> Iterator[Sequence[Any]]:
    """(event_id, event_type, source, reason, message, payload) of every dead letter."""
    d = t.dead_letters
    yield from conn.execute(
        select(d.c.event_id, d.c.event_type, d.c.source, d.c.reason, d.c.message, d.c.payload)
    )


def rejection_reasons(conn: Connection) -> dict[str, str]:
    """event id -> the reason of its dead letter, for the logged events rejected."""
    ev, dl = t.events, t.dead_letters
    rows = conn.execute(
        select(dl.c.event_id, dl.c.reason).where(
            dl.c.event_id.in_(select(ev.c.event_id).where(ev.c.outcome == "rejected"))
        )
    )
    return {str(event_id): str(reason) for event_id, reason in rows}


def logged_events(conn: Connection, *, after: int = -(2**63)) -> Iterator[Row[Any]]:
    """The event log in arrival order from after ``after``, a page at a time."""
    ev = t.events
    while True:
        rows = conn.execute(select(ev).where(ev.c.seq > after).order_by(ev.c.seq).limit(PAGE)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def logged_links(conn: Connection, *, after: int) -> Sequence[Any]:
    """(seq, event_id, chain, chain_seq, hash, outcome) of the events logged after ``after``."""
    ev = t.events
    return conn.execute(
        select(ev.c.seq, ev.c.event_id, ev.c.chain, ev.c.chain_seq, ev.c.hash, ev.c.outcome)
        .where(ev.c.seq > after)
        .order_by(ev.c.seq)
    ).all()


def carried_dead_letters(conn: Connection) -> Iterator[Row[Any]]:
    """The dead letters a replay of the event log would not recreate: all but the
    rejection of a logged event (same id, source and payload), by id."""
    ev, dl = t.events, t.dead_letters
    recreated = (
        select(ev.c.event_id)
        .where(
            and_(
                ev.c.event_id == dl.c.event_id,
                ev.c.outcome == "rejected",
                ev.c.source == dl.c.source,
                ev.c.payload == dl.c.payload,
            )
        )
        .exists()
    )
    yield from conn.execute(select(dl).where(~recreated).order_by(dl.c.id))


def first_table_with_rows(conn: Connection) -> str | None:
    """The name of a ledger table holding rows, or None when the database is empty."""
    for table in schema.metadata.sorted_tables:
        if conn.execute(select(func.count()).select_from(table)).scalar():
            return table.name
    return None
