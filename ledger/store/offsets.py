"""Consumer checkpoints in the database: one row per (group, topic, partition) with the
next offset to apply and the highest barrier marker passed (ledger/offsets.py).

Rows are created when a partition is first assigned, then only moved by ``advance``,
a compare-and-set inside the batch's own transaction: the row lock it takes makes a
second writer of the same partition wait, then find the offset moved and give up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Connection, Table, and_, select, update

from ledger.offsets import NO_MARKER, Advance, Fenced, Stored, TopicPartition
from ledger.store import tables as t
from ledger.store.backend import UpsertInsert
from ledger.store.store import Store

_T = t.consumer_offsets


def claim_partitions(
    store: Store, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, Stored]:
    """Make sure ``group`` has a checkpoint row for each partition (in one transaction);
    returns every checkpoint of the group."""
    with store.begin() as conn:
        claim(conn, store.insert, group, partitions)
        return load(conn, group)


def progress(store: Store, group: str) -> dict[TopicPartition, Stored]:
    """Every checkpoint of ``group``, as committed."""
    with store.read() as conn:
        return load(conn, group)


def load(conn: Connection, group: str) -> dict[TopicPartition, Stored]:
    rows = conn.execute(
        select(_T.c.topic, _T.c.partition, _T.c.next_offset, _T.c.marker).where(
            _T.c.group_id == group
        )
    )
    return {(r.topic, r.partition): Stored(r.next_offset, r.marker) for r in rows}


def claim(
    conn: Connection,
    insert: Callable[[Table], UpsertInsert],
    group: str,
    partitions: Iterable[TopicPartition],
) -> None:
    """Create the rows of partitions never applied by ``group`` (offset 0, no marker);
    rows that exist are left as they are. ``insert`` is the backend's dialect insert."""
    rows = [
        {
            "group_id": group,
            "topic": topic,
            "partition": partition,
            "next_offset": 0,
            "marker": NO_MARKER,
        }
        for topic, partition in sorted(partitions)
    ]
    if rows:
        conn.execute(
            insert(_T)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["group_id", "topic", "partition"])
        )


def advance(conn: Connection, group: str, advances: Sequence[Advance]) -> None:
    """Move every partition of the batch, each only from where the batch started; raises
    ``Fenced`` (the caller's transaction then rolls back) if any had moved. Rows are
    taken in key order, so two batches never deadlock on them."""
    for a in sorted(advances, key=lambda a: (a.topic, a.partition)):
        moved = conn.execute(
            update(_T)
            .where(
                and_(
                    _T.c.group_id == group,
                    _T.c.topic == a.topic,
                    _T.c.partition == a.partition,
                    _T.c.next_offset == a.start,
                )
            )
            .values(next_offset=a.end, marker=a.marker)
        ).rowcount
        if moved != 1:
            stored = conn.execute(
                select(_T.c.next_offset).where(
                    and_(
                        _T.c.group_id == group, _T.c.topic == a.topic, _T.c.partition == a.partition
                    )
                )
            ).scalar()
            raise Fenced(
                f"{a.topic}/{a.partition}: batch starts at {a.start}, the database "
                f"has {stored} (another consumer applied it)"
            )
