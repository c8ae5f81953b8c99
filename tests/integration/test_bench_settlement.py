"""bench/bench_settlement.py builds its ledger of >= 1M due orders by ingesting a reference
set of orders and copying their rows in SQL (``replicate``). That is only a benchmark of
the real thing if the copies are the rows ingestion writes: here, on PostgreSQL, the
copied ledger and one that ingested the copies' events have the same orders, the same
balances, and the same settlement run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from sqlalchemy import func, select

from bench.bench_settlement import AS_OF, build, events, replicate
from bench.support import fresh_database
from ledger.domain.events import Event, OrderCompleted, OrderPlaced, SettlementRun
from ledger.service import LedgerService, Received
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.store import Store

ORDERS, SHARERS, COPIES, SEED = 8, 6, 4, 7


def with_copies(stream: list[Event]) -> Iterator[Event]:
    """The stream, then each order and completion again under the copy ids."""
    yield from stream
    for k in range(1, COPIES):
        for e in stream:
            if isinstance(e, OrderPlaced | OrderCompleted):
                yield replace(e, event_id=f"{e.event_id}~{k}", order_id=f"{e.order_id}~{k:04d}")


def snapshot(store: Store) -> tuple[list[tuple], dict[tuple, int], list[tuple]]:
    o, b, e, p = t.orders, t.account_balances, t.entries, t.postings
    with store.read() as conn:
        orders = sorted(tuple(r) for r in conn.execute(select(o)))
        balances = {
            (account, currency): int(total)
            for account, currency, total in conn.execute(
                select(b.c.account, b.c.currency, func.sum(b.c.balance)).group_by(
                    b.c.account, b.c.currency
                )
            )
        }
        run = conn.execute(
            select(e.c.ordinal, e.c.order_id, p.c.account, p.c.amount)
            .join(p, p.c.entry_seq == e.c.seq)
            .where(e.c.event_id == "ev-run")
            .order_by(e.c.ordinal, p.c.ordinal)
        )
        return orders, balances, [tuple(r) for r in run]


def settle(store: Store) -> None:
    run = SettlementRun("ev-run", AS_OF, "bench", run_id="run-1", as_of=AS_OF)
    LedgerService(store).ingest([Received(run, "run", "ingest")])


def test_replicated_orders_are_what_ingesting_the_copies_writes(pg_url: str) -> None:
    with (
        fresh_database(pg_url, prefix="test_replica_", ledger=True) as copied_url,
        fresh_database(pg_url, prefix="test_ingested_", ledger=True) as ingested_url,
    ):
        build(copied_url, ORDERS, SHARERS, SEED)
        replicate(copied_url, COPIES)
        ingested = open_store(ingested_url)
        stream = list(events(ORDERS, SHARERS, SEED))
        LedgerService(ingested).ingest(
            [Received(e, f"s:{n}", "c") for n, e in enumerate(with_copies(stream))]
        )
        copied = open_store(copied_url)
        try:
            before = snapshot(copied)
            assert len(before[0]) == ORDERS * COPIES
            assert before[:2] == snapshot(ingested)[:2]
            settle(copied)
            settle(ingested)
            after = snapshot(copied)
            assert after == snapshot(ingested)
            assert len(after[2]) > ORDERS * COPIES  # the run settled every copy
        finally:
            copied.dispose()
            ingested.dispose()
