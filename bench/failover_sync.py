"""Synchronous against asynchronous replication: what waiting for the standby costs.

    .venv/bin/python bench/failover_sync.py [--orders N] [--rounds 1] [--commits 300]

For each mode (asynchronous, then synchronous, alternated ``--rounds`` times) it starts a
fresh primary + standby (deploy/postgres/pair.sh; ``PG_PAIR_SYNC=on`` sets
``synchronous_standby_names`` so every commit waits for the standby's flush), then
measures on it, back to back:

- ``commit_ms``: p50 / p99 of ``--commits`` one-row transactions (``SELECT txid_current()``
  then COMMIT: one WAL commit record each, the smallest write a client can wait for);
- ``records_per_s``: the fixture topics of bench/bench_e2e.py (``--orders`` dense orders)
  through one ``ConsumerLoop`` into a fresh database on the pair, as bench_e2e's (b), from
  start to caught up (group join included), and ``apply_per_s``: the records over the
  time spent in batches only (decode, rules, the transaction and its commit).

Prints a table and the sync/async ratios, writes ``bench/results/failover-sync-<time>.json``.
The pair is destroyed afterwards. Env: LEDGER_BENCH_KAFKA (127.0.0.1:19092),
LEDGER_KAFKA_CREDENTIALS, PG_PRIMARY_PORT / PG_STANDBY_PORT (56540 / 56541).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text

from bench.bench_e2e import DEFAULT_KAFKA, e2e_consume, workload
from bench.ceiling import ensure_fixture
from bench.support import scratch_topics
from ledger.logs import configure_logging

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PAIR = REPO / "deploy" / "postgres" / "pair.sh"


def pair(command: str, sync: bool = False) -> None:
    env = {**os.environ, "PG_PAIR_SYNC": "on" if sync else "off"}
    done = subprocess.run(
        ["bash", str(PAIR), command], capture_output=True, text=True, env=env, timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(f"pair.sh {command} failed:\n{done.stdout}\n{done.stderr}")


def pair_urls() -> dict[str, str]:
    cache = Path(os.environ.get("LEDGER_CACHE_DIR", REPO / ".cache"))
    env_file = Path(os.environ.get("PG_PAIR_DIR", cache / "postgres-pair")) / "postgres.env"
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


def commit_latency(url: str, commits: int) -> dict[str, float]:
    engine = create_engine(url)
    times = []
    try:
        for _ in range(commits):
            with engine.connect() as conn:
                started = time.perf_counter()
                with conn.begin():
                    conn.execute(text("SELECT txid_current()"))
                times.append((time.perf_counter() - started) * 1000)
    finally:
        engine.dispose()
    times.sort()
    return {
        "p50": round(statistics.median(times), 3),
        "p99": round(times[int(len(times) * 0.99) - 1], 3),
    }


def measure(sync: bool, bootstrap: str, topics: Any, count: int, commits: int) -> dict[str, Any]:
    pair("destroy")
    pair("start", sync=sync)
    try:
        urls = pair_urls()
        # fresh_database (bench/support.py) takes the owner's and service's URLs from these
        os.environ["LEDGER_TEST_PG_OWNER_URL"] = urls["LEDGER_MIGRATE_DB_URL"]
        os.environ["LEDGER_TEST_PG_SERVICE_URL"] = urls["LEDGER_DB_URL"]
        latency = commit_latency(urls["LEDGER_DB_URL"], commits)
        e2e = e2e_consume(bootstrap, topics, urls["LEDGER_TEST_PG_URL"], count, None)
    finally:
        pair("destroy")
    return {
        "mode": "sync" if sync else "async",
        "commit_ms": latency,
        "records_per_s": e2e["events_per_s"],
        "apply_per_s": round(e2e["records"] / e2e["seconds_in_batches"]),
        "batches": e2e["batches"],
        "seconds": e2e["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    parser.add_argument("--orders", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--commits", type=int, default=300)
    args = parser.parse_args()
    configure_logging("console", "warning")
    fixture_args = argparse.Namespace(
        workload="dense", seed=2026, orders=args.orders, sharers=500, buyers=20_000
    )
    events = workload(fixture_args)
    topics = scratch_topics(f"bench-failover-sync-o{args.orders}")
    fixture = ensure_fixture(args.bootstrap, topics, 4, events)
    rows = []
    for _ in range(args.rounds):
        for sync in (False, True):
            row = measure(sync, args.bootstrap, topics, fixture["records"], args.commits)
            print(json.dumps(row), flush=True)
            rows.append(row)

    def mean(mode: str, pick: Any) -> float:
        return statistics.mean(pick(r) for r in rows if r["mode"] == mode)

    ratios = {
        "records_per_s": round(
            mean("sync", lambda r: r["records_per_s"])
            / mean("async", lambda r: r["records_per_s"]),
            3,
        ),
        "apply_per_s": round(
            mean("sync", lambda r: r["apply_per_s"]) / mean("async", lambda r: r["apply_per_s"]),
            3,
        ),
        "commit_p50": round(
            mean("sync", lambda r: r["commit_ms"]["p50"])
            / mean("async", lambda r: r["commit_ms"]["p50"]),
            3,
        ),
    }
    print(f"sync/async: {ratios}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"failover-sync-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"records": fixture["records"], "rows": rows, "ratios": ratios}))
    print(f"written: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
