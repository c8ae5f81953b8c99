"""Views on PostgreSQL: query latency (p50/p99) and rebuild rate with a large journal.

    .venv/bin/python bench/bench_views.py [--orders 200000] [--samples 2000]

Simulates a platform (``simulate.generate``), ingests it through ``LedgerService`` in
batches of 2,000 events over four chains into a scratch database, catches the views up,
then measures: ``ledger rebuild`` of every view (postings/s), and p50/p99 of the
balance of one sharer, that balance as of a recent time, and one order's multi-level
payout view (random sharers and orders, one read snapshot per query, like the API).
Then rebuilds each view alone and times ``verify`` (chains and replay) in entries/min.
``--keep`` keeps the scratch database and ``--db URL`` measures an existing ledger
(no ingest); ``--sqlite PATH`` builds (when missing) and measures a SQLite ledger. The
build catches the views up after every batch, as the API's follower does, and reports its
cost per entry over the first and last tenth of the batches. Writes
``bench/results/views-<time>.json``. Env: LEDGER_BENCH_PG_URL.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text

from bench.support import default_pg_url, fresh_database
from ledger.logs import configure_logging
from ledger.read import balances
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.store.verify import verify
from ledger.store.view_tables import VIEW_TABLES
from projectors import catalog, runner

RESULTS = Path(__file__).resolve().parent / "results"


def scratch_database(pg_url: str, *, keep: bool = False) -> AbstractContextManager[str]:
    """A new empty database on ``pg_url``'s cluster, dropped afterwards unless ``keep``."""
    return fresh_database(pg_url, prefix="bench_views", keep=keep, ledger=True)


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


def build_ledger(url: str, orders: int) -> dict[str, Any]:
    """Simulate ``orders`` orders and ingest them into ``url`` over four chains, catching
    the views up after every batch as the API's follower does. Returns events, ingest
    seconds and the follower's cost per entry over the first and the last tenth of the
    batches (flat with history: their ratio near 1)."""
    store = open_store(url)
    follow: list[tuple[int, float]] = []  # (entries folded, seconds) per batch
    try:
        started = time.perf_counter()
        events = generate(3, sharers=2000, buyers=20_000, orders=orders, days=60).all()
        service = LedgerService(store)
        for start in range(0, len(events), 2000):
            chain = f"ledger.orders/{(start // 2000) % 4}"
            service.ingest(
                [
                    Received(e, f"bench:{start + i}", chain)
                    for i, e in enumerate(events[start : start + 2000])
                ]
            )
            began = time.perf_counter()
            entries = runner.catch_up(store).total
            follow.append((entries, time.perf_counter() - began))
        ingest_s = time.perf_counter() - started - sum(s for _, s in follow)
    finally:
        store.dispose()
    return {"events": len(events), "ingest_s": round(ingest_s, 1), **follower_cost(follow)}


def follower_cost(follow: list[tuple[int, float]]) -> dict[str, Any]:
    """µs per entry of the catch-ups over the first and the last tenth of the batches."""
    tenth = max(1, len(follow) // 10)

    def per_entry(part: list[tuple[int, float]]) -> float:
        return sum(s for _, s in part) / max(1, sum(n for n, _ in part)) * 1e6

    first, last = per_entry(follow[:tenth]), per_entry(follow[-tenth:])
    return {
        "follow_batches": len(follow),
        "follow_us_per_entry_first_tenth": round(first, 1),
        "follow_us_per_entry_last_tenth": round(last, 1),
        "follow_last_over_first": round(last / first, 2) if first else None,
    }


def vacuum_views(store: Store) -> None:
    """VACUUM ANALYZE the view tables (PostgreSQL): each rebuild leaves its predecessor's
    rows dead, and a timed rebuild should meet the table as autovacuum keeps it, not
    the bloat of the rebuild timed just before."""
    if store.backend != "postgresql":
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in VIEW_TABLES:
            conn.execute(text(f"VACUUM ANALYZE {table}"))


def measure_rebuild(store: Store, postings: int) -> dict[str, Any]:
    """Rebuild every view, then each view alone: seconds and postings/s."""
    vacuum_views(store)
    started = time.perf_counter()
    runner.rebuild(store)
    seconds = time.perf_counter() - started
    per_view = {}
    for name in catalog.PROJECTORS:
        vacuum_views(store)
        began = time.perf_counter()
        runner.rebuild(store, name)
        per_view[name] = round(time.perf_counter() - began, 2)
    return {
        "rebuild_all_views_s": round(seconds, 2),
        "rebuild_postings_per_s": round(postings / seconds),
        "rebuild_per_view_s": per_view,
    }


def measure_verify(store: Store) -> dict[str, Any]:
    """``ledger verify`` (chains and replay) over the whole ledger: entries per minute."""
    with store.read() as conn:
        entries = conn.execute(select(func.count()).select_from(t.entries)).scalar() or 0
    started = time.perf_counter()
    report = verify(store)
    seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"verify failed: {report.problem}")
    return {
        "entries": entries,
        "verify_s": round(seconds, 2),
        "verify_entries_per_min": round(entries / seconds * 60),
    }


def measure_queries(store: Store, samples: int) -> dict[str, Any]:
    """p50/p99 of a sharer's balances (now and an hour back) and an order's payout view."""
    rng = random.Random(1)
    with store.read() as conn:
        sharers = [r for (r,) in conn.execute(select(t.sharers.c.sharer_id))]
        orders = [
            r for (r,) in conn.execute(select(t.orders.c.order_id).where(t.orders.c.levels != "[]"))
        ]
        latest = conn.execute(select(func.max(t.postings.c.occurred_at))).scalar() or 0
    return {
        "balance": timed(
            store, samples, lambda c: balances.balances(c, sharer_id=rng.choice(sharers))
        ),
        "balance_as_of_1h_ago": timed(
            store,
            samples,
            lambda c: balances.balances(c, sharer_id=rng.choice(sharers), as_of=latest - 3_600_000),
        ),
        "order_payout_view": timed(
            store, samples, lambda c: orders.order_payouts(c, rng.choice(orders))
        ),
    }


def measure(url: str, samples: int, *, with_verify: bool = True) -> dict[str, Any]:
    """Every figure of this benchmark on the ledger at ``url``."""
    store = open_store(url)
    try:
        with store.read() as conn:
            postings = conn.execute(select(func.count()).select_from(t.postings)).scalar() or 0
        result: dict[str, Any] = {"postings": postings}
        result.update(measure_rebuild(store, postings))
        if with_verify:
            result.update(measure_verify(store))
        result.update(measure_queries(store, samples))
    finally:
        store.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--db", help="measure this existing ledger instead of building one")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch database (prints its URL)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip timing verify")
    parser.add_argument(
        "--sqlite", metavar="PATH", help="build (when missing) and measure a SQLite ledger"
    )
    args = parser.parse_args()
    configure_logging("console", "warning")
    result: dict[str, Any] = {}
    with ExitStack() as stack:
        url = args.db
        if args.sqlite:
            url = f"sqlite:///{args.sqlite}"
            if not Path(args.sqlite).exists():
                result.update(build_ledger(url, args.orders))
        elif url is None:
            pg = default_pg_url()
            url = stack.enter_context(scratch_database(pg, keep=args.keep))
            print(f"ledger database: {url}", file=sys.stderr)
            result.update(build_ledger(url, args.orders))
        result.update(measure(url, args.samples, with_verify=not args.no_verify))
    result["machine"] = platform.platform()
    result["python"] = platform.python_version()
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"views-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
