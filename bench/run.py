"""Every benchmark of issue 16 in one run, on the same generated events.

    .venv/bin/python bench/run.py [--quick] [--orders N] [--mix-orders N] [--postings N]

Two streams are published through Kafka (``Publisher``, barrier markers included) into
topics named after their sizes (reused while they hold the expected records):
``realistic`` (simulate.generate: setup, clicks >> orders > refunds, finance) and
``orders-only`` (plans and a 10,000-sharer forest, then one click + one order per order).
On each: the ceiling (kafka-python consume; consume + Avro decode) and ours end to end
(1, then 2 ``ledger consume`` processes of one group into a fresh PostgreSQL ledger); after
the mix, freshness (bench/freshness.py: publish -> visible in the API at half its rate). On
the orders-only stream also the baselines, fed the same events from the same topics:
naive (ORM, commit per event), the eventsourcing library (defaults; aggregate cache)
and a bare batched COPY. Then a large ledger: view rebuild, verify, balance query p50/p99;
and one settlement run over 1M due orders: peak RSS of its process (bench_settlement.py).
Writes bench/results/run-<time>.json, .md (table with ratios and targets) and .png.
Env: LEDGER_BENCH_KAFKA (127.0.0.1:19092), LEDGER_BENCH_PG_URL (scratch databases are
created beside it and dropped).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg2
from eventsourcing.persistence import PersistenceError
from sqlalchemy.exc import OperationalError

from bench import (
    baseline_copy,
    baseline_eventsourcing,
    baseline_naive,
    bench_settlement,
    freshness,
    heavy_buyers,
    large,
    ours,
    pg_cost,
    probe,
    report,
)
from bench.ceiling import ensure_fixture, raw_consume
from bench.support import (
    DEFAULT_KAFKA,
    RESULTS,
    Topics,
    configure_logging,
    default_pg_url,
    portable,
    scratch_topics,
)
from bench.workloads import count_orders, orders_only, realistic
from ledger import compiled

PARTITIONS = 4
T = TypeVar("T")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


RETRIED: list[str] = []
# what a PostgreSQL restart looks like to SQLAlchemy, psycopg2, the eventsourcing library,
# and to the wait helpers (a consumer process that gave up)
LOST_DATABASE = (OperationalError, psycopg2.OperationalError, PersistenceError, SystemExit)


def retried(name: str, step: Callable[[], T], attempts: int = 3) -> T:
    """Runs ``step`` again (from scratch, on a fresh database) when PostgreSQL went away
    under it: the servers are shared, and other work may restart them."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except LOST_DATABASE as exc:
            if attempt == attempts:
                raise
            say(f"{name}: failed ({str(exc).splitlines()[0][:120]}); again in 10 s")
            RETRIED.append(name)
            time.sleep(10)
    raise AssertionError("unreachable")


def ceiling_and_ours(
    name: str, events: list[Any], args: argparse.Namespace
) -> tuple[Topics, dict[str, Any]]:
    stem = f"bench-run-{name}-s{args.seed}-e{len(events)}-p{PARTITIONS}"
    topics = scratch_topics(stem)  # names a test broker's ACLs grant (ledger/kafka/acls.py)
    fixture = ensure_fixture(args.bootstrap, topics, PARTITIONS, events)
    say(f"{name}: {fixture['records']:,} records in {stem}-* (reused: {fixture['reused']})")
    out: dict[str, Any] = {"events": len(events), "orders": count_orders(events)}
    out["fixture"] = fixture
    # The generated events stay alive in this process; at millions of events every full
    # collection would walk them and slow the ceiling's consumer down (not the ledger's,
    # which runs in its own processes). Frozen objects are never scanned.
    gc.collect()
    gc.freeze()
    records = fixture["records"]
    out["raw_consume"] = raw_consume(args.bootstrap, topics, records, decode=False)
    out["raw_decode"] = raw_consume(args.bootstrap, topics, records, decode=True)
    consume, decode = out["raw_consume"]["seconds"], out["raw_decode"]["seconds"]
    say(f"{name}: raw consume {consume} s, consume + decode {decode} s")
    for n in args.consumers:
        run = retried(
            f"{name} e2e {n}", lambda n=n: ours.e2e(args.bootstrap, topics, args.pg_url, n)
        )
        out[f"e2e_{n}"] = run
        say(f"{name}: ours e2e, {n} consumer(s): {run['seconds']} s, {run['postings']:,} postings")
    return topics, out


def baselines(topics: Topics, args: argparse.Namespace, out: dict[str, Any]) -> None:
    b, pg = args.bootstrap, args.pg_url
    out["commit_probe"] = retried("probe", lambda: probe.commits_per_second(pg))
    say(f"PostgreSQL one-row commits: {out['commit_probe']['commits_per_s']}/s")
    out["naive"] = retried("naive", lambda: baseline_naive.run(b, topics, pg, args.naive_orders))
    say(f"naive: {out['naive']['orders']} orders in {out['naive']['orders_seconds']} s")
    for key, cache in (("es_default", False), ("es_cache", True)):
        out[key] = retried(
            key,
            lambda cache=cache: baseline_eventsourcing.run(b, topics, pg, args.es_orders, cache),
        )
        say(f"{key}: {out[key]['orders']} orders in {out[key]['orders_seconds']} s")
    out["copy"] = retried("copy", lambda: baseline_copy.run(b, topics, pg, args.orders))
    say(f"copy: {out['copy']['orders']} orders in {out['copy']['orders_seconds']} s")


def fresh(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Freshness at half the mix's one-consumer steady rate (measured above, or now)."""
    mix = (result.get("mix") or {}).get("e2e_1") or {}
    max_rate = mix.get("steady_records_per_s") or freshness.measure_max_rate(
        args.bootstrap, args.pg_url, args.seed
    )
    seconds = 20.0 if args.quick else 60.0
    return freshness.run(args.bootstrap, args.pg_url, max_rate, seconds=seconds, seed=args.seed)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a ~2 minute smoke run")
    parser.add_argument("--orders", type=int, help="orders-only stream orders (50,000)")
    parser.add_argument("--sharers", type=int, help="orders-only forest size (10,000)")
    parser.add_argument("--mix-orders", type=int, help="realistic mix orders (30,000)")
    parser.add_argument("--postings", type=int, help="large ledger postings (1,000,000)")
    parser.add_argument(
        "--settlement-orders", type=int, help="due orders of the settlement run (1,000,000)"
    )
    parser.add_argument("--naive-orders", type=int, help="orders fed to the naive baseline")
    parser.add_argument("--es-orders", type=int, help="orders fed to each eventsourcing run")
    parser.add_argument("--samples", type=int, default=2000, help="balance queries timed")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--render", metavar="JSON", help="only redo the .md/.png of a result")
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of: mix,freshness,orders,baselines,large,heavy,pgcost,settlement",
    )
    parser.add_argument("--heavy-orders", type=int, help="orders of each heavy-buyers ledger")
    parser.add_argument(
        "--pg-sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        help="pg_cost.py: small,big,step ledger records (200000,2000000,100000)",
    )
    parser.add_argument(
        "--consumers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="group sizes of the e2e runs (1,2); a long RSS run may want only 1",
    )
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    parser.add_argument("--pg-url", help="default: LEDGER_BENCH_PG_URL, else the deploy cluster's")
    args = parser.parse_args()
    args.pg_url = args.pg_url or default_pg_url()
    if 1 not in args.consumers:
        parser.error("--consumers must include 1: every ratio is against one consumer")
    full = {
        "orders": 50_000,
        "sharers": 10_000,
        "mix_orders": 30_000,
        "postings": 1_000_000,
        "settlement_orders": 1_000_000,
        "naive_orders": 5_000,
        "es_orders": 2_000,
        "heavy_orders": 4_000,
        "pg_sizes": [200_000, 2_000_000, 100_000],
    }
    quick = {
        "orders": 2_000,
        "sharers": 1_000,
        "mix_orders": 2_000,
        "postings": 30_000,
        "settlement_orders": 20_000,
        "naive_orders": 500,
        "es_orders": 300,
        "heavy_orders": 400,
        "pg_sizes": [20_000, 60_000, 10_000],
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def render(path: Path) -> None:
    """Write the .md and .png of a saved result again (after a change to bench/report.py)."""
    result = json.loads(path.read_text())
    path.with_suffix(".md").write_text(report.markdown(result))
    report.chart(result, path.with_suffix(".png"))
    print(report.markdown(result))


def main() -> None:
    args = parse()
    if args.render:
        render(Path(args.render))
        return
    configure_logging("console", "warning")
    skip = set(filter(None, args.skip.split(",")))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    sizes = {
        k: getattr(args, k)
        for k in (
            "orders",
            "sharers",
            "mix_orders",
            "postings",
            "settlement_orders",
            "naive_orders",
            "es_orders",
            "heavy_orders",
            "seed",
        )
    }
    result: dict[str, Any] = {
        "benchmark": "bench/run.py",
        "time": stamp,
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "quick": args.quick,
        "sizes": sizes,
        "note": "Kafka, PostgreSQL and the consumers share the machine's cores",
        "domain": portable(compiled.STATUS),  # the consumers inherit this process's environment
    }
    RESULTS.mkdir(exist_ok=True)
    base = RESULTS / f"run-{stamp}{'-quick' if args.quick else ''}"

    def save(complete: bool) -> None:
        """Written after every section, so a run cut short still leaves its figures."""
        result["complete"] = complete
        result["retried_after_database_loss"] = RETRIED
        result["total_seconds"] = round(time.perf_counter() - started, 1)
        base.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        base.with_suffix(".md").write_text(report.markdown(result))
        report.chart(result, base.with_suffix(".png"))

    if "mix" not in skip:
        _, result["mix"] = ceiling_and_ours("mix", realistic(args.seed, args.mix_orders), args)
        save(False)
    if "freshness" not in skip:
        result["freshness"] = retried("freshness", lambda: fresh(result, args))
        f = result["freshness"]["publish_to_visible"]
        say(f"freshness: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")
        save(False)
    if "orders" not in skip:
        events = orders_only(args.seed, args.orders, sharers=args.sharers)
        topics, result["orders"] = ceiling_and_ours("orders", events, args)
        save(False)
        if "baselines" not in skip:
            baselines(topics, args, result["orders"])
            save(False)
    if "large" not in skip:
        try:
            result["large"] = retried(
                "large", lambda: large.run(args.pg_url, args.postings, args.samples, args.seed)
            )
            say(f"large: {result['large']['postings']:,} postings")
        except LOST_DATABASE as exc:
            result["large"] = {"error": str(exc).splitlines()[0]}
            say(f"large: given up ({result['large']['error'][:120]})")
    if "heavy" not in skip:
        # attribution against the buyers' history: 10 vs 10,000 clicks in the window
        clicks = (1_000, 20_000) if args.quick else (10_000, 100_000)
        result["heavy_buyers"] = retried(
            "heavy buyers",
            lambda: heavy_buyers.run(
                args.pg_url, args.heavy_orders, clicks[0], seed=args.seed, total_clicks=clicks[1]
            ),
        )
        h = result["heavy_buyers"]
        say(f"heavy buyers: {h['orders_per_s']}, cost ratio {h['cost_ratio']}")
    if "pgcost" not in skip:
        small, big, step = args.pg_sizes
        result["pg_cost"] = retried(
            "pg_cost",
            lambda: pg_cost.run(
                args.pg_url,
                small=small,
                big=big,
                step=step,
                warm=step // 10,
                streams=["orders", "mix"],
                schemas=["before", "after"],
                seed=args.seed,
                keep=False,
            ),
        )
        say(f"pg_cost: growth {pg_cost.growths(result['pg_cost'])}")
    if "settlement" not in skip:
        orders = args.settlement_orders
        reference = min(10_000, max(1, orders // 100))  # ingested; the rest copies of them
        try:
            result["settlement"] = retried(
                "settlement",
                lambda: bench_settlement.run(
                    args.pg_url, orders, reference, 10_000, args.seed, before=None
                ),
            )
            say(f"settlement: {result['settlement']['after']}")
        except LOST_DATABASE as exc:
            result["settlement"] = {"error": str(exc).splitlines()[0]}
    save(True)
    print(report.markdown(result))
    say(f"total {result['total_seconds']} s; wrote {base}.json/.md/.png")


if __name__ == "__main__":
    main()
