"""End-to-end ingestion benchmark: Kafka topics → ConsumerLoop → PostgreSQL ledger.

    .venv/bin/python bench/bench_e2e.py [--workload dense|activity] [--orders N]
                                        [--partitions 4] [--processes N] [--profile]

Every event goes through Kafka, published by ``Publisher`` (barrier markers included):
nothing is applied beforehand. Workloads: ``dense`` (``simulate.generate_dense``: plans
changing mid-stream, enrollments throughout, a settlement run every few days, payouts,
between the buyers' events) or ``activity`` (``simulate.generate``: setup, then clicks,
orders, completions and refunds, then finance). The fixture topics are named after the
parameters and reused while they hold the expected records. In the same run it measures:

(a) ``raw``: kafka-python consume + Avro decode of both topics, consumer tuned as
    ``CONSUMER_DEFAULTS`` (the ceiling: no database at all);
(b) ``e2e``: the topics through one ``ConsumerLoop`` into a fresh PostgreSQL database,
    until the checkpoints stored in the database reach the end offsets;
(c) with ``--processes N``: N ``ledger consume`` processes of one group, the same way.

Prints a table, writes ``bench/results/e2e-<time>.json`` and reports e2e/raw (target
≥ 50%). ``--profile`` runs (b) under pyinstrument. Env: LEDGER_BENCH_KAFKA
(127.0.0.1:19092), LEDGER_BENCH_PG_URL (a scratch database is created beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench import ceiling
from bench.ceiling import ensure_fixture
from bench.support import (
    ConsumerProcess,
    auth,
    default_pg_url,
    end_offsets,
    fresh_database,
    portable,
    scratch_topics,
    unique,
    wait_until_applied,
)
from consumers.client import CONSUMER_DEFAULTS, ConsumerConfig
from consumers.loop import ConsumerLoop
from consumers.metrics import ConsumerMetrics
from ledger.config import Topics
from ledger.logs import configure_logging
from ledger.service import LedgerService
from ledger.simulate import generate, generate_dense
from ledger.store.opening import open_store

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_KAFKA = "127.0.0.1:19092"


def workload(args: argparse.Namespace) -> list[Any]:
    if args.workload == "dense":
        return generate_dense(
            seed=args.seed,
            orders=args.orders,
            sharers=max(60, args.orders // 40),
            buyers=max(400, args.orders // 5),
        )
    return generate(
        seed=args.seed, sharers=args.sharers, buyers=args.buyers, orders=args.orders
    ).all()


def raw_consume(bootstrap: str, topics: Topics, count: int) -> dict:
    """(a) kafka-python consume + decode, tuned like the ledger consumer, no database."""
    result = ceiling.raw_consume(bootstrap, topics, count, decode=True)
    return {**result, "records_per_s": round(result["records"] / result["seconds"])}


def e2e_consume(
    bootstrap: str, topics: Topics, pg_url: str, count: int, profile_to: Path | None
) -> dict:
    """(b) the topics through one ConsumerLoop into a fresh PostgreSQL ledger."""
    with fresh_database(pg_url, prefix="bench_e2e_", ledger=True) as url:
        store = open_store(url)
        service = LedgerService(store)
        group = unique("bench-e2e")
        metrics = ConsumerMetrics()
        loop = ConsumerLoop(
            ConsumerConfig(
                bootstrap,
                group,
                topics.orders,
                topics.accounts,
                auth=tuple(auth("consumer").items()),
            ),
            service,
            metrics,
        )
        ends = end_offsets(bootstrap, [topics.orders, topics.accounts])
        timing: dict[str, float] = {}

        def watch() -> None:
            """Stop the loop once the database holds the end offsets of every partition."""
            while not loop.stopping:
                stored = service.stored_offsets(group)
                if all(stored.get(k, 0) >= v for k, v in ends.items()):
                    timing["caught_up"] = time.perf_counter()
                    loop.stop()
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        profiler = None
        if profile_to is not None:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001)
            profiler.start()
        timing["start"] = time.perf_counter()
        watcher.start()
        loop.run()  # in this thread, so the profiler sees it
        if profiler is not None:
            profiler.stop()
            profile_to.with_suffix(".txt").write_text(
                portable(profiler.output_text(unicode=True, color=False, show_all=False))
            )
            profile_to.with_suffix(".html").write_text(profiler.output_html())
        watcher.join(5)
        seconds = timing["caught_up"] - timing["start"]
        batch = metrics.batch_seconds.collect()[0]
        in_batches = next(s.value for s in batch.samples if s.name.endswith("_sum"))
        store.dispose()
    return {
        "records": count,
        "batches": loop.batches,
        "seconds": round(seconds, 3),
        "seconds_in_batches": round(in_batches, 3),
        "events_per_s": round(count / seconds),
    }


def e2e_processes(
    bootstrap: str, topics: Topics, pg_url: str, count: int, consumers: int, log_dir: Path
) -> dict:
    """(c) optional: ``consumers`` ``ledger consume`` processes of one group (scale-out)."""
    with fresh_database(pg_url, prefix="bench_e2e_", ledger=True) as url:
        store = open_store(url)
        group = unique("bench-e2e-n")
        names = [topics.orders, topics.accounts]
        ends = end_offsets(bootstrap, names)
        started = time.perf_counter()
        procs = [
            ConsumerProcess(url, bootstrap, group, topics, log_dir / f"consumer-{n}.log")
            for n in range(consumers)
        ]
        try:
            wait_until_applied(
                store, group, ends, 1800, alive=lambda: [p.alive() for p in procs] and None
            )
            seconds = time.perf_counter() - started
        finally:
            for proc in procs:
                proc.terminate()
        store.dispose()
    return {
        "consumers": consumers,
        "records": count,
        "seconds": round(seconds, 3),
        "events_per_s": round(count / seconds),
    }


def table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    parser.add_argument("--pg-url", help="default: LEDGER_BENCH_PG_URL, else the deploy cluster's")
    parser.add_argument("--workload", choices=("dense", "activity"), default="dense")
    parser.add_argument("--orders", type=int, default=8_000)
    parser.add_argument("--buyers", type=int, default=20_000)
    parser.add_argument("--sharers", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="profile (b) with pyinstrument")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also run this many `ledger consume` processes of one group",
    )
    args = parser.parse_args()
    args.pg_url = args.pg_url or default_pg_url()
    configure_logging("console", "warning")

    events = workload(args)
    stem = f"bench-{args.workload}-s{args.seed}-o{args.orders}-b{args.buyers}-p{args.partitions}"
    topics = scratch_topics(stem)  # names a test broker's ACLs grant (ledger/kafka/acls.py)
    count = len(events)
    print(f"fixture: {count} events in {topics.orders} and {topics.accounts}", flush=True)
    fixture = ensure_fixture(args.bootstrap, topics, args.partitions, events)
    raw = raw_consume(args.bootstrap, topics, fixture["records"])
    print(f"raw consume+decode: {raw['records_per_s']} records/s", flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    profile_to = RESULTS / f"e2e-{stamp}-profile" if args.profile else None
    e2e = e2e_consume(args.bootstrap, topics, args.pg_url, count, profile_to)
    ratio = e2e["events_per_s"] / raw["records_per_s"]
    scaled = None
    if args.processes:
        scaled = e2e_processes(
            args.bootstrap,
            topics,
            args.pg_url,
            count,
            args.processes,
            Path(tempfile.mkdtemp(prefix="bench-e2e-")),
        )
    result = {
        "benchmark": "bench_e2e",
        "time": stamp,
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "workload": args.workload,
        "topics": [topics.orders, topics.accounts],
        "partitions": args.partitions,
        "events": count,
        "fixture": fixture,
        "raw": raw,
        "e2e": e2e,
        "ratio": round(ratio, 4),
        "target_ratio": 0.5,
        "profiled": args.profile,
        "processes": scaled,
        "consumer_defaults": dict(CONSUMER_DEFAULTS),
    }
    out = RESULTS / f"e2e-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        table(
            [
                ("measure", "events", "seconds", "events/s"),
                (
                    "raw consume+decode",
                    str(raw["records"]),
                    str(raw["seconds"]),
                    str(raw["records_per_s"]),
                ),
                ("e2e ConsumerLoop→PG", str(count), str(e2e["seconds"]), str(e2e["events_per_s"])),
                ("ratio e2e/raw", "", "", f"{ratio:.1%} (target ≥ 50%)"),
                *(
                    [
                        (
                            f"e2e {scaled['consumers']} processes",
                            str(count),
                            str(scaled["seconds"]),
                            f"{scaled['events_per_s']} "
                            f"({scaled['events_per_s'] / raw['records_per_s']:.1%})",
                        )
                    ]
                    if scaled
                    else []
                ),
            ]
        )
    )
    print(f"results: {out}" + (f"; profile: {profile_to}.txt/.html" if profile_to else ""))


if __name__ == "__main__":
    main()
