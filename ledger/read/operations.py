"""What operations watch: dead letters, parked events, lag, and what became of an event."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Connection, Table, func, select

from ledger.domain import refs
from ledger.domain.kinds import RefKind
from ledger.read import redrives
from ledger.read.models import (
    DeadLetter,
    Lag,
    LoggedOutcome,
    Page,
    ParkedEvent,
    PartitionLag,
    ViewLag,
    page,
)
from ledger.store import tables as t
from ledger.store.dead_letters import dead_letter_key
from projectors.catalog import PROJECTORS
from projectors.runner import checkpoints, heads

# The high watermark of each (topic, partition) asked for, as far as Kafka answers.
EndOffsets = Callable[[set[tuple[str, int]]], dict[tuple[str, int], int]]


def dead_letters(
    conn: Connection,
    *,
    reason: str | None = None,
    redriven: bool | None = None,
    after: tuple[int] | None = None,
    limit: int = 100,
) -> Page[DeadLetter]:
    """Events that could not be applied, oldest first (keyset by id), each with its
    redrive if finance resubmitted it; ``redriven=False``: the ones left to correct."""
    d = t.dead_letters
    query = select(*redrives.DEAD_LETTER_COLUMNS).order_by(d.c.id).limit(limit)
    if reason is not None:
        query = query.where(d.c.reason == reason)
    if redriven is not None:
        done = redrives.redriven_clause()
        query = query.where(done if redriven else ~done)
    if after is not None:
        query = query.where(d.c.id > after[0])
    rows = redrives.with_redrives(conn, list(conn.execute(query)))
    return page(rows, limit, lambda r: (r.id,))


def dead_letter_reasons(conn: Connection) -> dict[str, int]:
    """How many dead letters there are per reason code, by reason."""
    d = t.dead_letters
    rows = conn.execute(select(d.c.reason, func.count()).group_by(d.c.reason).order_by(d.c.reason))
    return {reason: int(n) for reason, n in rows}


_PARKED = (t.parked.c.event_id, t.parked.c.type, t.parked.c.waits_for, t.parked.c.source)


def parked(
    conn: Connection, *, after: tuple[int] | None = None, limit: int = 100
) -> Page[ParkedEvent]:
    """Events waiting for what they refer to, in arrival order (keyset by arrival)."""
    q = t.parked
    query = select(q.c.arrival, *_PARKED, q.c.parked_at).order_by(q.c.arrival).limit(limit)
    if after is not None:
        query = query.where(q.c.arrival > after[0])
    rows = list(conn.execute(query))
    events = [ParkedEvent(*r[1:]) for r in rows]
    return Page(tuple(events), (rows[-1].arrival,) if len(rows) == limit else None)


# parked-reference prefix -> (table, key column) holding what the event waits for
_REFERENCES: dict[RefKind, tuple[Table, str]] = {
    refs.ORDER: (t.orders, "order_id"),
    refs.SHARER: (t.sharers, "sharer_id"),
    refs.PAYOUT: (t.payouts, "payout_id"),
}


def orphaned_parked(conn: Connection) -> list[ParkedEvent]:
    """Parked events whose reference is applied: they should have been released with it
    (SPEC §4.6). Never expected; each one is a defect to report, not to wait out."""
    q = t.parked
    out: list[ParkedEvent] = []
    for prefix, (table, key) in _REFERENCES.items():
        column = table.c[key]
        ref = func.substr(q.c.waits_for, len(refs.ref(prefix, "")) + 1)
        rows = conn.execute(
            select(*_PARKED, q.c.parked_at)
            .where(q.c.waits_for.like(refs.ref(prefix, "%")))
            .where(select(column).where(column == ref).exists())
            .order_by(q.c.arrival)
        )
        out.extend(ParkedEvent(*r) for r in rows)
    return out


def lag(conn: Connection, end_offsets: EndOffsets) -> Lag:
    """Ingestion lag per topic and partition, view lag, dead letters and parked events."""
    o, q = t.consumer_offsets, t.parked
    stored = conn.execute(
        select(o.c.group_id, o.c.topic, o.c.partition, o.c.next_offset).order_by(
            o.c.group_id, o.c.topic, o.c.partition
        )
    ).all()
    ends = end_offsets({(r.topic, r.partition) for r in stored})
    partitions = []
    for r in stored:
        end = ends.get((r.topic, r.partition))
        lagging = None if end is None else max(0, end - r.next_offset)
        partitions.append(
            PartitionLag(r.group_id, r.topic, r.partition, r.next_offset, end, lagging)
        )
    chain_heads = heads(conn)
    views = [
        ViewLag(name, _behind(chain_heads, checkpoints(conn, name).items())) for name in PROJECTORS
    ]
    by_reference: dict[str, int] = {}
    for waits_for, n in conn.execute(select(q.c.waits_for, func.count()).group_by(q.c.waits_for)):
        kind = waits_for.split(":", 1)[0]
        by_reference[kind] = by_reference.get(kind, 0) + int(n)
    return Lag(tuple(partitions), tuple(views), dead_letter_reasons(conn), by_reference)


def _behind(chain_heads: dict[str, int], done: Iterable[tuple[str, int]]) -> int:
    held = dict(done)
    return sum(head - held.get(chain, 0) for chain, head in chain_heads.items())


def logged_outcome(conn: Connection, event_id: str) -> LoggedOutcome | None:
    """The event logged under ``event_id`` and its outcome on arrival, or None."""
    e, d = t.events, t.dead_letters
    row = conn.execute(
        select(e.c.type, e.c.source, e.c.payload, e.c.outcome).where(e.c.event_id == event_id)
    ).first()
    if row is None:
        return None
    reason = message = None
    if row.outcome == "rejected":  # its dead letter (same source and payload) says why
        key = dead_letter_key(row.source, row.payload)
        dead = conn.execute(select(d.c.reason, d.c.message).where(d.c.dedup_key == key)).first()
        if dead is not None:
            reason, message = dead.reason, dead.message
    return LoggedOutcome(row.type, row.payload, row.outcome, reason, message)
