"""Ours, end to end: ``ledger consume`` processes of one group, Kafka -> a fresh PostgreSQL
ledger, timed from their start (process start-up and group join included) until the
offsets stored in the ledger database reach the topics' end offsets. The consumers' RSS
is sampled from /proc with the records applied so far, every half second."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from bench.support import (
    ConsumerProcess,
    LedgerService,
    RssSampler,
    Topics,
    applied_offsets,
    cpu_seconds,
    end_offsets,
    fresh_database,
    open_store,
    server_cpu,
    steady_rate,
    summarize_rss,
    tables,
    unique,
    wait_until_applied,
)


def e2e(
    bootstrap: str, topics: Topics, pg_url: str, consumers: int, timeout: float | None = None
) -> dict[str, Any]:
    """One e2e run. ``timeout``: by default long enough for 500 records/s (at least 30
    minutes): a 10M-record run on a growing ledger outlasted a fixed 30 minutes."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    with fresh_database(pg_url, prefix="bench_e2e_", ledger=True) as url:
        store = open_store(url)  # migrated by the owner: the consumers run as the service
        service = LedgerService(store)
        group = unique("bench-run")
        ends = end_offsets(bootstrap, [topics.orders, topics.accounts])
        if timeout is None:
            timeout = max(1800.0, sum(ends.values()) / 500)
        server_started = postmaster_start(store)

        def applied() -> int:
            stored = applied_offsets(service, group)
            if stored is None:  # unreachable: no sample rather than a false zero
                raise ConnectionError("PostgreSQL unreachable")
            return sum(stored.values())

        servers_before = server_cpu()
        started = time.perf_counter()
        procs = [
            ConsumerProcess(url, bootstrap, group, topics, log_dir / f"consumer-{n}.log")
            for n in range(consumers)
        ]
        try:
            with RssSampler([p.pid for p in procs], applied) as sampler:

                def alive() -> None:
                    for proc in procs:
                        proc.alive()

                wait_until_applied(store, group, ends, timeout, alive)
                seconds = time.perf_counter() - started
                cpu = cpu_split(procs, servers_before, sum(ends.values()), seconds)
        finally:
            for proc in procs:
                proc.terminate()
        # the consumers ride out a PostgreSQL restart (other work restarts the shared
        # server), but their time would then include it: such a run is done again
        if postmaster_start(store) != server_started:
            raise SystemExit("PostgreSQL restarted during the run")
        with store.read() as conn:
            counts = service_counts(conn)
        store.dispose()
    return {
        "consumers": consumers,
        "records": sum(ends.values()),
        "accounts_records": sum(v for (t, _), v in ends.items() if t == topics.accounts),
        "seconds": round(seconds, 3),
        "steady_records_per_s": round(steady_rate(sampler.samples, sum(ends.values()), seconds)),
        "rss": summarize_rss(sampler.samples, sum(ends.values())),
        "cpu": cpu,
        **counts,
    }


def cpu_split(
    procs: list[ConsumerProcess], servers_before: dict[str, float], records: int, seconds: float
) -> dict[str, float]:
    """Where the run's CPU went, per record: the consumers, PostgreSQL, Kafka; and how many
    cores were busy on average. Says how many cores a rate would take on a bigger machine."""
    servers = server_cpu()
    used = {
        "consumers_s": sum(cpu_seconds(p.pid) for p in procs),
        "postgres_s": servers["postgres_s"] - servers_before["postgres_s"],
        "kafka_s": servers["kafka_s"] - servers_before["kafka_s"],
    }
    per_record = {
        name.replace("_s", "_us_per_record"): round(value / records * 1e6, 1)
        for name, value in used.items()
    }
    busy = sum(used.values()) / seconds
    return {**{k: round(v, 2) for k, v in used.items()}, **per_record, "cores_busy": round(busy, 2)}


def postmaster_start(store: Any) -> Any:
    with store.read() as conn:
        return conn.execute(text("SELECT pg_postmaster_start_time()")).scalar_one()


def service_counts(conn: Any) -> dict[str, int]:
    """Rows the run left: events in the log, journal entries, postings."""
    return {
        name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for name, table in (
            ("logged_events", tables.events),
            ("entries", tables.entries),
            ("postings", tables.postings),
        )
    }
