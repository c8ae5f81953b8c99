"""A large ledger (>= the requested postings) for view rebuild, verify and balance queries.

Built in-process: the orders-only stream sized to the postings target, through
``LedgerService.ingest`` in batches of 2,000 events over four chains (like
bench_views.py; no Kafka, so the build is also a figure of the service alone). Then:
``runner.rebuild`` of each view (postings/s, and the rows each view writes), ``verify``
(entries/s: the hash chains alone, then the full check with the replay through the
rules), and the
p50/p99 of one sharer's balances (one read snapshot per query, like the API).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TypeVar

import psycopg2
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from bench.bench_views import timed
from bench.support import (
    LedgerService,
    Received,
    balances,
    catalog,
    fresh_database,
    open_store,
    runner,
    tables,
    tune_gc_for_throughput,
    verify,
)
from bench.workloads import orders_only
from ledger.chain.checkpoint import keygen, load_private_key
from ledger.store.audit import AuditStore
from ledger.store.checkpoints import sign_checkpoint

LOST = (OperationalError, psycopg2.OperationalError)
POSTINGS_PER_ORDER = 4.4  # merchant + fee + 1 to 3 levels, measured on this stream
BATCH = 2_000
CHAINS = 4


T = TypeVar("T")


class Outages:
    """Runs each step again when PostgreSQL went away under it (the servers are shared and
    other work restarts them), and keeps the time lost so the figures can leave it out.
    Each step is one transaction or a read, so running it again is safe (an ingest batch
    that did commit comes back as duplicates)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lost = 0.0
        self.count = 0

    def run(self, step: Callable[[], T]) -> T:
        for _ in range(10):
            started = time.perf_counter()
            try:
                return step()
            except LOST:
                self.count += 1
                self._wait_for_server()
                self.lost += time.perf_counter() - started
        raise SystemExit("PostgreSQL kept going away")

    def _wait_for_server(self, timeout: float = 180.0) -> None:
        engine = create_engine(self.url, poolclass=NullPool)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
                    return
                except LOST:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
        finally:
            engine.dispose()


def run(pg_url: str, postings: int, samples: int, seed: int) -> dict[str, Any]:
    tune_gc_for_throughput()  # as `ledger ingest` and `ledger verify` do
    orders = int(postings / POSTINGS_PER_ORDER) + 1
    events = orders_only(seed, orders)
    rng = random.Random(seed)
    with fresh_database(pg_url, prefix="bench_large_") as url:
        store = open_store(url)
        service = LedgerService(store)
        outages = Outages(url)
        started = time.perf_counter()
        for start in range(0, len(events), BATCH):
            chain = f"bench/{(start // BATCH) % CHAINS}"
            batch = [
                Received(e, f"bench:{start + i}", chain)
                for i, e in enumerate(events[start : start + BATCH])
            ]
            outages.run(lambda batch=batch: service.ingest(batch))
        ingest_s = time.perf_counter() - started - outages.lost
        counted, entries, sharers = outages.run(lambda: _counts(store))
        views = {
            name: outages.run(lambda name=name: _seconds(lambda: runner.rebuild(store, name)))
            for name in catalog.PROJECTORS  # each view rebuilt and timed on its own
        }
        rows = outages.run(lambda: _view_rows(store))
        reports: dict[bool, Any] = {}

        def verified(replay: bool) -> float:
            started = time.perf_counter()
            reports[replay] = verify(store, replay=replay)
            return time.perf_counter() - started

        chains_s = outages.run(lambda: verified(False))
        verify_s = outages.run(lambda: verified(True))
        daily = outages.run(lambda: _daily_check(store, seed, orders, len(events)))
        balance = outages.run(
            lambda: timed(
                store, samples, lambda c: balances.balances(c, sharer_id=rng.choice(sharers))
            )
        )
        store.dispose()
    return {
        "events": len(events),
        "orders": orders,
        "postings": int(counted),
        "entries": int(entries),
        "ingest_seconds": round(ingest_s, 2),
        "rebuild_seconds": round(sum(views.values()), 2),
        "rebuild_view_seconds": {name: round(sec, 2) for name, sec in views.items()},
        "view_rows": rows,
        "verify_chains_seconds": round(chains_s, 2),
        "verify_chains_ok": reports[False].ok,
        "verify_seconds": round(verify_s, 2),
        "verify_ok": reports[True].ok,
        **daily,
        "outages": outages.count,
        "seconds_lost_to_outages": round(outages.lost, 1),
        "balance_samples": samples,
        "balance_p50_ms": balance["p50_ms"],
        "balance_p99_ms": balance["p99_ms"],
    }


def _daily_check(store: Any, seed: int, orders: int, logged: int) -> dict[str, Any]:
    """Issue 22: the daily check. Sign the ledger, verify it in full keeping the auditor's
    replay state there, add a day's orders (1% more: the same stream continued), then
    verify from the checkpoint. Leaves the day in the ledger (the last step)."""
    day = orders_only(seed, orders + _day_orders(orders))[logged:]
    with TemporaryDirectory() as tmp:
        state = AuditStore(Path(tmp) / "audit.sqlite")
        try:
            checkpoint = sign_checkpoint(store, load_private_key(keygen()[0]), 1_900_000_000_000)
            started = time.perf_counter()
            kept = verify(store, state=state, keep_at=checkpoint)
            keep_s = time.perf_counter() - started
            before = _counts(store)[1]
            service = LedgerService(store)
            for start in range(0, len(day), BATCH):
                chain = f"bench/{(start // BATCH) % CHAINS}"
                service.ingest(
                    [
                        Received(e, f"bench:day:{start + i}", chain)
                        for i, e in enumerate(day[start : start + BATCH])
                    ]
                )
            day_entries = _counts(store)[1] - before
            started = time.perf_counter()
            daily = verify(store, state=state, since=checkpoint)
            daily_s = time.perf_counter() - started
        finally:
            state.dispose()
    return {
        "verify_keep_state_seconds": round(keep_s, 2),
        "verify_keep_state_ok": kept.ok,
        "daily_events": len(day),
        "daily_entries": day_entries,
        "daily_seconds": round(daily_s, 2),
        "daily_ok": daily.ok and daily.since is not None,
    }


def _day_orders(orders: int) -> int:
    return max(1, orders // 100)


def _view_rows(store: Any) -> dict[str, int]:
    """Rows each view holds after its rebuild (what its rebuild wrote)."""
    with store.read() as conn:
        return {
            name: sum(
                int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in projector.tables
            )
            for name, projector in catalog.PROJECTORS.items()
        }


def _counts(store: Any) -> tuple[int, int, list[str]]:
    with store.read() as conn:
        postings = conn.execute(select(func.count()).select_from(tables.postings)).scalar_one()
        entries = conn.execute(select(func.count()).select_from(tables.entries)).scalar_one()
        sharers = [r for (r,) in conn.execute(select(tables.sharers.c.sharer_id))]
    return int(postings), int(entries), sharers


def _seconds(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started
