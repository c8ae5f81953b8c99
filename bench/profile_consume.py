"""Where one consumer's CPU goes: the ConsumerLoop (what `ledger consume` runs) under
pyinstrument, on bench/run.py's topics, into a fresh PostgreSQL ledger.

    .venv/bin/python bench/profile_consume.py [--stream mix|orders] [--mix-orders 30000]
                                              [--orders 50000]

Publishes the stream first if its topics are missing (the same names as bench/run.py's,
so a run's topics are reused). Writes bench/results/profile-<stream>-<time>.txt/.html and
prints the text profile. Env as bench/run.py (LEDGER_BENCH_KAFKA, LEDGER_BENCH_PG_URL).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_e2e import e2e_consume
from bench.ceiling import ensure_fixture
from bench.support import DEFAULT_KAFKA, RESULTS, configure_logging, default_pg_url, scratch_topics
from bench.workloads import orders_only, realistic
from ledger import compiled

PARTITIONS = 4  # as bench/run.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", choices=["mix", "orders"], default="mix")
    parser.add_argument("--mix-orders", type=int, default=30_000)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    args = parser.parse_args()
    configure_logging("console", "warning")
    if args.stream == "mix":
        events = realistic(args.seed, args.mix_orders)
    else:
        events = orders_only(args.seed, args.orders)
    topics = scratch_topics(f"bench-run-{args.stream}-s{args.seed}-e{len(events)}-p{PARTITIONS}")
    fixture = ensure_fixture(args.bootstrap, topics, PARTITIONS, events)
    del events
    gc.collect()
    gc.freeze()
    stem = RESULTS / f"profile-{args.stream}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = e2e_consume(args.bootstrap, topics, default_pg_url(), fixture["records"], stem)
    print(stem.with_suffix(".txt").read_text())
    print(f"domain: {compiled.STATUS}")
    print(result)
    print(f"wrote {stem}.txt/.html")


if __name__ == "__main__":
    main()
