"""Two writers of one partition: the checkpoint compare-and-set lets exactly one commit.

Each writer has its own service (own connections), as two consumer processes would. The
race is forced: the first holds its transaction open after moving the checkpoint; the
second starts the same batch from the same stored offset meanwhile, waits on the row,
then finds it moved and is refused (``Fenced``). Nothing is doubled or left parked, and
the refused writer resumes from the database. On both backends (SQLite writers queue on
its one write lock, so there the second simply starts after the first commits).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from ledger.domain.events import ClickRecorded, OrderPlaced, RefundIssued, RefundLine
from ledger.offsets import Advance, Fenced, Stored, advances_for
from ledger.service import LedgerService, Received
from ledger.store import tables as t
from ledger.store.opening import open_store
from tests.support import reads as queries
from tests.support.worked_example import setup as worked_example

TP = ("orders", 0)


def items(events: Sequence[Any], first_offset: int = 0) -> list[Received]:
    return [
        Received(e, f"orders/0@{first_offset + n}", "orders/0", ("orders", 0, first_offset + n))
        for n, e in enumerate(events)
    ]


class HeldService(LedgerService):
    """Moves the checkpoint, then waits for ``release`` before finishing its transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inside = threading.Event()
        self.release = threading.Event()

    def _ingest(
        self,
        conn: Connection,
        batch: Any,
        advances: Sequence[Advance],
        group: str | None,
        *,
        optimistic: bool,
    ) -> Any:
        report = super()._ingest(conn, batch, advances, group, optimistic=optimistic)
        self.inside.set()
        assert self.release.wait(30)
        return report


def test_the_second_writer_of_a_partition_is_fenced(db_url: str) -> None:
    events = [r.incoming.event for r in worked_example().results]
    order = next(e for e in events if isinstance(e, OrderPlaced))
    refund = RefundIssued(
        "e-r1",
        order.occurred_at + 1,
        "t",
        refund_id="R1",
        order_id=order.order_id,
        buyer_id=order.buyer_id,
        lines=(RefundLine(order.lines[0].line_id, 100),),
    )
    batch = items(events)
    store_a, store_b = open_store(db_url), open_store(db_url)
    zombie, owner = HeldService(store_a), LedgerService(store_b)
    start = owner.claim("g", [TP])
    assert start[TP] == Stored(0)

    outcome: dict[str, Any] = {}

    def writer(name: str, service: LedgerService) -> threading.Thread:
        def run() -> None:
            try:
                outcome[name] = service.ingest_isolating(batch, starts=start, group="g")
            except Fenced as fenced:
                outcome[name] = fenced

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    thread = writer("zombie", zombie)
    assert zombie.inside.wait(30)
    second = writer("owner", owner)
    second.join(0.5)
    assert second.is_alive(), "the second writer must wait for the first's row lock"
    zombie.release.set()
    thread.join(30)
    second.join(30)
    assert not isinstance(outcome["zombie"], Fenced)  # first to move the checkpoint wins
    assert isinstance(outcome["owner"], Fenced)
    assert "another consumer applied it" in str(outcome["owner"])

    # the refused writer resumes from the database: the next batch applies once
    stored = owner.progress("g")
    assert stored[TP] == Stored(len(batch))
    report = owner.ingest_isolating(items([refund], len(batch)), starts=stored, group="g")
    assert report.applied == 1
    with store_b.read() as conn:
        rows = conn.execute(select(func.count()).select_from(t.events)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(t.events.c.event_id))))
        assert rows == distinct.scalar_one() == len(batch) + 1
    assert queries.parked_events(store_b) == []
    with pytest.raises(Fenced):  # and the zombie's stale view is refused again
        zombie.release.set()
        zombie.ingest_isolating(items([refund], len(batch)), starts=start, group="g")
    store_a.dispose()
    store_b.dispose()


def test_a_batch_from_a_stale_start_commits_nothing(db_url: str) -> None:
    store = open_store(db_url)
    service = LedgerService(store)
    clicks = [
        ClickRecorded(
            f"c{n}", 1_000 + n, "t", click_id=f"k{n}", sharer_id="s", buyer_id="b", product_id="p"
        )
        for n in range(4)
    ]
    start = service.claim("g", [TP])
    service.ingest_isolating(items(clicks[:2]), starts=start, group="g")
    with pytest.raises(Fenced):
        service.ingest(
            items(clicks[2:], 2), advances=advances_for(items(clicks[2:], 2), start), group="g"
        )
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.clicks)).scalar_one() == 2
    assert service.progress("g")[TP] == Stored(2)
    store.dispose()
