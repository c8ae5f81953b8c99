"""Context for the baselines: how many single-row transactions PostgreSQL commits per
second right now. A per-event consumer is bound by this (one WAL flush per commit), and
it moves with whatever else is using the disk and the cores."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import create_engine, text

from bench.support import fresh_database


def commits_per_second(pg_url: str, commits: int = 300) -> dict[str, Any]:
    with fresh_database(pg_url, prefix="bench_probe_") as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (n bigint)"))
        took = []
        with engine.connect() as conn:
            for n in range(commits):
                started = time.perf_counter()
                conn.execute(text("INSERT INTO probe VALUES (:n)"), {"n": n})
                conn.commit()
                took.append(time.perf_counter() - started)
        engine.dispose()
    took.sort()
    return {
        "commits": commits,
        "commits_per_s": round(commits / sum(took)),
        "p50_ms": round(took[len(took) // 2] * 1000, 2),
        "p99_ms": round(took[int(len(took) * 0.99) - 1] * 1000, 2),
    }
