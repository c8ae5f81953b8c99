"""Views on PostgreSQL: query latency (p50/p99) and rebuild rate with a large journal.

    .venv/bin/python bench/bench_views.py [--orders 200000] [--samples 2000]

Simulates a platform (``simulate.generate``), ingests it through ``LedgerService`` in
batches of 2,000 events over four chains into a scratch database, catches the views up,
then measures: ``ledger rebuild`` of every view (postings/s), and p50/p99 of the
balance of one sharer, that balance as of a recent time, and one order's multi-level
payout view (random sharers and orders, one read snapshot per query, like the API).
Writes ``bench/results/views-<time>.json``. Env: LEDGER_BENCH_PG_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from ledger.logs import configure_logging
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from projectors import read, runner
from tests.support.kafka import fresh_database

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG = "postgresql+psycopg2://ledger:ledger@127.0.0.1:55432/ledger"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
    }


def timed(store, samples: int, query) -> dict[str, float]:  # type: ignore[no-untyped-def]
    took = []
    for _ in range(samples):
        start = time.perf_counter()
        with store.read() as conn:
            query(conn)
        took.append(time.perf_counter() - start)
    return percentiles(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    configure_logging("console", "warning")
    pg = os.environ.get("LEDGER_BENCH_PG_URL", DEFAULT_PG)
    rng = random.Random(1)
    with fresh_database(pg, "bench_views_") as url:
        store = open_store(url)
        started = time.perf_counter()
        events = generate(3, sharers=2000, buyers=20_000, orders=args.orders, days=60).all()
        service = LedgerService(store)
        for start in range(0, len(events), 2000):
            chain = f"ledger.orders/{(start // 2000) % 4}"
            service.ingest(
                [
                    Received(e, f"bench:{start + i}", chain)
                    for i, e in enumerate(events[start : start + 2000])
                ]
            )
        ingest_s = time.perf_counter() - started
        runner.catch_up(store)
        with store.read() as conn:
            postings = conn.execute(select(func.count()).select_from(t.postings)).scalar() or 0
            sharers = [r for (r,) in conn.execute(select(t.sharers.c.sharer_id))]
            orders = [
                r
                for (r,) in conn.execute(
                    select(t.orders.c.order_id).where(t.orders.c.levels != "[]")
                )
            ]
            latest = conn.execute(select(func.max(t.postings.c.occurred_at))).scalar() or 0
        started = time.perf_counter()
        runner.rebuild(store)
        rebuild_s = time.perf_counter() - started
        result = {
            "events": len(events),
            "postings": postings,
            "ingest_s": round(ingest_s, 1),
            "rebuild_all_views_s": round(rebuild_s, 2),
            "rebuild_postings_per_s": round(postings / rebuild_s),
            "balance": timed(
                store, args.samples, lambda c: read.balances(c, sharer_id=rng.choice(sharers))
            ),
            "balance_as_of_1h_ago": timed(
                store,
                args.samples,
                lambda c: read.balances(c, sharer_id=rng.choice(sharers), as_of=latest - 3_600_000),
            ),
            "order_payout_view": timed(
                store, args.samples, lambda c: read.order_levels(c, rng.choice(orders))
            ),
            "machine": platform.platform(),
            "python": platform.python_version(),
        }
        store.dispose()
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"views-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
