"""LedgerService.ingest on PostgreSQL: batches of 1,000 events against one per transaction.

    .venv/bin/python bench/bench_ingest.py [--events 6000] [--batch 1000] [--profile]

The same events (the first ``--events`` of ``simulate.generate``: setup, then activity)
are ingested into two fresh databases in the same run: once in batches of ``--batch``
events per transaction, once one event per transaction. Prints events/s of each and the
ratio, writes ``bench/results/ingest-<time>.json``. ``--profile`` runs the batched pass
under pyinstrument and writes the text and HTML profiles next to the JSON. Env:
LEDGER_BENCH_PG_URL (the deploy/postgres cluster's ledger database; scratch databases are
created beside it and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import default_pg_url, fresh_database, portable
from ledger.logs import configure_logging
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store.opening import open_store
from ledger.store.verify import verify

RESULTS = Path(__file__).resolve().parent / "results"
CHAINS = 4  # like a 4-partition orders topic: events spread by buyer over four chains


def received(events: list) -> list[Received]:
    out = []
    for n, event in enumerate(events):
        chain = f"bench/{zlib.crc32(event.ordering_key().encode()) % CHAINS}"
        out.append(Received(event, f"bench@{n}", chain))
    return out


def run(pg_url: str, items: list[Received], batch: int, profile_to: Path | None) -> dict:
    with fresh_database(pg_url, prefix="bench_ingest_", ledger=True) as url:
        store = open_store(url)
        service = LedgerService(store)
        profiler = None
        if profile_to is not None:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        started = time.perf_counter()
        entries = 0
        for start in range(0, len(items), batch):
            entries += service.ingest(items[start : start + batch]).entries
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.stop()
            profile_to.with_suffix(".txt").write_text(
                portable(profiler.output_text(unicode=True, color=False, show_all=False))
            )
            profile_to.with_suffix(".html").write_text(profiler.output_html())
        report = verify(store)
        assert report.ok, report.problem
        store.dispose()
    return {
        "batch": batch,
        "events": len(items),
        "entries": entries,
        "seconds": round(seconds, 3),
        "events_per_s": round(len(items) / seconds),
        "head": report.head,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", help="default: LEDGER_BENCH_PG_URL, else the deploy cluster's")
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--profile", action="store_true", help="profile the batched pass")
    args = parser.parse_args()
    args.pg_url = args.pg_url or default_pg_url()
    configure_logging("console", "warning")

    work = generate(seed=args.seed, sharers=200, buyers=5000, orders=max(100, args.events // 5))
    events = work.all()[: args.events]
    items = received(events)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    profile_to = RESULTS / f"ingest-{stamp}-profile" if args.profile else None
    batched = run(args.pg_url, items, args.batch, profile_to)
    print(f"batches of {args.batch}: {batched['events_per_s']} events/s", flush=True)
    single = run(args.pg_url, items, 1, None)
    print(f"one per transaction: {single['events_per_s']} events/s", flush=True)
    # the same events in the same order give the same ledger, whatever the batching
    assert batched["head"] == single["head"], "batching changed the ledger head"
    ratio = batched["events_per_s"] / single["events_per_s"]
    result = {
        "benchmark": "bench_ingest",
        "time": stamp,
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "events": len(items),
        "chains": CHAINS,
        "batched": batched,
        "single": single,
        "ratio": round(ratio, 2),
        "profiled": args.profile,
    }
    out = RESULTS / f"ingest-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'mode':<22}{'events':>8}{'seconds':>10}{'events/s':>10}")
    for name, r in ((f"batch of {args.batch}", batched), ("one per transaction", single)):
        print(f"{name:<22}{r['events']:>8}{r['seconds']:>10}{r['events_per_s']:>10}")
    print(
        f"ratio batched/single: {ratio:.1f}x\nresults: {out}"
        + (f"; profile: {profile_to}.txt/.html" if profile_to else "")
    )


if __name__ == "__main__":
    main()
