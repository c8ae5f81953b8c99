"""A large ledger (>= the requested postings) for view rebuild, verify and balance queries.

Built in-process: the orders-only stream sized to the postings target, through
``LedgerService.ingest`` in batches of 2,000 events over four chains (like
bench_views.py; no Kafka, so the build is also a figure of the service alone). Then:
``runner.rebuild`` of every view (postings/s: each posting folded by each view),
``verify`` (entries/s, the full check including the replay through the rules), and the
p50/p99 of one sharer's balances (one read snapshot per query, like the API).
"""

from __future__ import annotations

import random
import time
from typing import Any

from sqlalchemy import func, select

from bench.bench_views import timed
from bench.support import (
    LedgerService,
    Received,
    fresh_database,
    open_store,
    read,
    runner,
    tables,
    verify,
)
from bench.workloads import orders_only

POSTINGS_PER_ORDER = 4.4  # merchant + fee + 1 to 3 levels, measured on this stream
BATCH = 2_000
CHAINS = 4


def run(pg_url: str, postings: int, samples: int, seed: int) -> dict[str, Any]:
    orders = int(postings / POSTINGS_PER_ORDER) + 1
    events = orders_only(seed, orders)
    rng = random.Random(seed)
    with fresh_database(pg_url, prefix="bench_large_") as url:
        store = open_store(url)
        service = LedgerService(store)
        started = time.perf_counter()
        for start in range(0, len(events), BATCH):
            chain = f"bench/{(start // BATCH) % CHAINS}"
            service.ingest(
                [
                    Received(e, f"bench:{start + i}", chain)
                    for i, e in enumerate(events[start : start + BATCH])
                ]
            )
        ingest_s = time.perf_counter() - started
        with store.read() as conn:
            counted = conn.execute(select(func.count()).select_from(tables.postings)).scalar_one()
            entries = conn.execute(select(func.count()).select_from(tables.entries)).scalar_one()
            sharers = [r for (r,) in conn.execute(select(tables.sharers.c.sharer_id))]
        started = time.perf_counter()
        runner.rebuild(store)
        rebuild_s = time.perf_counter() - started
        started = time.perf_counter()
        report = verify(store)
        verify_s = time.perf_counter() - started
        balance = timed(store, samples, lambda c: read.balances(c, sharer_id=rng.choice(sharers)))
        store.dispose()
    return {
        "events": len(events),
        "orders": orders,
        "postings": int(counted),
        "entries": int(entries),
        "ingest_seconds": round(ingest_s, 2),
        "rebuild_seconds": round(rebuild_s, 2),
        "verify_seconds": round(verify_s, 2),
        "verify_ok": report.ok,
        "balance_samples": samples,
        "balance_p50_ms": balance["p50_ms"],
        "balance_p99_ms": balance["p99_ms"],
    }
