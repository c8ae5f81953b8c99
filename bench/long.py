"""The long run (issue 22 §1): ten million records through one ``ledger consume``, with the
per-million throughput, consumer RSS, CPU per record and ledger size, against the targets.

    .venv/bin/python bench/long.py [--records 10000000] [--variant growing|heavy]
        [--step 1000000] [--keep] [--resume bench/results/long-<time>.json]

The stream (bench/long_stream.py) is generated lazily and published as it is generated,
in full, before the consumer starts: the consumer then works through a backlog, as in
bench/run.py's e2e rows. Publishing beside the consumer would put the publisher's CPU
(Avro encoding, kafka-python: about one core for a few minutes) on the same two cores
during the first millions only, so the first millions would be slowed and the "last vs
second million" ratio flattered; a backlog measures the consumer's own rate at every
size. The topics are named after the stream and reused while they hold its records.

One ``ledger consume`` process then applies it into a fresh PostgreSQL ledger. Every half
second: the records applied (the offsets stored in the ledger) and the consumer's VmRSS;
at every ``--step`` records a point: VmRSS, VmHWM, the largest VmRSS since the previous
point, CPU seconds of the consumer, PostgreSQL and Kafka, and the size of the ledger
database and of its tables. Writes bench/results/long-<time>.json/.md/.png after every
point, so a run cut short leaves its figures. A run that fails keeps its database and
tells how to resume: ``--resume`` starts a new consumer of the same group on the same
ledger (it goes on from the offsets stored there) and appends to the same files.
Env: as bench/run.py (LEDGER_BENCH_KAFKA, LEDGER_BENCH_PG_URL, LEDGER_KAFKA_CREDENTIALS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from bench import long_report
from bench.ceiling import ensure_fixture
from bench.long_stream import VARIANTS, LongStream
from bench.ours import postmaster_start, service_counts
from bench.support import (
    DEFAULT_KAFKA,
    RESULTS,
    ConsumerProcess,
    LedgerService,
    Topics,
    applied_offsets,
    configure_logging,
    cpu_seconds,
    default_pg_url,
    end_offsets,
    fresh_database,
    open_store,
    role_url,
    scratch_topics,
    server_cpu,
    unique,
)

PARTITIONS = 4
EVERY_S = 0.5


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of ``pid`` from /proc, in KiB ({} once it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line[:5]] = int(line.split()[1])
    except OSError:
        return {}
    return out


def ledger_size(store: Any) -> dict[str, Any]:
    """The ledger database's size and its largest tables (indexes and TOAST included), MiB."""
    with store.read() as conn:
        total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        rows = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            )
        ).all()
    tables = {name: round(size / 2**20, 1) for name, size in rows if size > 2**20}
    return {"db_mib": round(total / 2**20, 1), "tables_mib": tables}


class Run:
    """One consumer process on the run's ledger, sampled until it has applied ``total``."""

    def __init__(
        self, result: dict[str, Any], save: Callable[[], None], step: int, stall_s: float
    ) -> None:
        self.result, self.save, self.step, self.stall_s = result, save, step, stall_s
        self.db_url = service_url(result["database"])
        self.store = open_store(self.db_url)
        self.service = LedgerService(self.store)
        self.total = result["records"]
        # seconds and CPU go on from where an earlier (failed) process left them
        samples = result["samples"]
        self.offset_s = samples[-1][0] if samples else 0.0
        self.cpu_base = result.get("consumer_cpu_s", 0.0)

    def applied(self) -> int | None:
        stored = applied_offsets(self.service, self.result["group"])
        return None if stored is None else sum(stored.values())

    def point(self, proc: ConsumerProcess, now: float, applied: int, kind: str) -> dict[str, Any]:
        mem = memory_kib(proc.pid)
        servers = server_cpu()
        cpu = self.cpu_base + cpu_seconds(proc.pid)
        self.result["consumer_cpu_s"] = cpu
        return {
            "kind": kind,  # "mark": a step's end; "start": where a process started
            "records": applied,
            "seconds": round(now, 2),
            "rss_mib": round(mem.get("VmRSS", 0) / 1024, 1),
            "hwm_mib": round(mem.get("VmHWM", 0) / 1024, 1),
            "consumer_cpu_s": round(cpu, 2),
            "postgres_cpu_s": round(servers["postgres_s"], 2),
            "kafka_cpu_s": round(servers["kafka_s"], 2),
            "postgres_started": str(postmaster_start(self.store)),
            **ledger_size(self.store),
        }

    def go(self, log: Path) -> None:
        result = self.result
        points, samples = result["points"], result["samples"]
        topics = Topics(**result["topics"])
        proc = ConsumerProcess(self.db_url, result["bootstrap"], result["group"], topics, log)
        started = time.perf_counter() - self.offset_s
        try:
            applied = self.applied() or 0
            points.append(self.point(proc, self.offset_s, applied, "start"))
            next_mark = (applied // self.step + 1) * self.step
            step_max, moved_at, last = 0, time.monotonic(), applied
            while True:
                time.sleep(EVERY_S)
                proc.alive()  # a consumer that died fails the run, with its log's tail
                now = time.perf_counter() - started
                done = self.applied()
                rss = memory_kib(proc.pid).get("VmRSS", 0)
                step_max = max(step_max, rss)
                if done is None:  # PostgreSQL unreachable: no sample rather than a false one
                    continue
                samples.append((round(now, 2), done, rss))
                if done != last:
                    moved_at, last = time.monotonic(), done
                elif time.monotonic() - moved_at > self.stall_s:
                    raise TimeoutError(f"no record applied for {self.stall_s:.0f} s at {done:,}")
                if done >= next_mark or done >= self.total:
                    mark = self.point(proc, now, done, "mark")
                    mark["step_max_rss_mib"] = round(step_max / 1024, 1)
                    points.append(mark)
                    step_max, next_mark = 0, (done // self.step + 1) * self.step
                    self.save()
                    say(
                        f"{done:,} applied, {mark['rss_mib']} MiB RSS, "
                        f"ledger {mark['db_mib']:,} MiB"
                    )
                if done >= self.total:
                    break
            result["seconds"] = round(time.perf_counter() - started, 2)
        finally:
            proc.terminate()

    def counts(self) -> dict[str, int]:
        with self.store.read() as conn:
            return service_counts(conn)


def service_url(database: str) -> str:
    """The service role's URL of ``database`` (only the name is saved: no password)."""
    url = make_url(role_url("LEDGER_TEST_PG_SERVICE_URL", "LEDGER_DB_URL"))
    return url.set(database=database).render_as_string(hide_password=False)


def drop_database(pg_url: str, name: str) -> None:
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="about this many")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="growing")
    parser.add_argument("--step", type=int, default=1_000_000, help="records between points")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--stall", type=float, default=900, help="seconds without progress")
    parser.add_argument("--keep", action="store_true", help="keep the ledger database")
    parser.add_argument("--resume", metavar="JSON", help="go on with a failed run's ledger")
    parser.add_argument("--render", metavar="JSON", help="only redo the .md/.png of a result")
    parser.add_argument("--publish-only", action="store_true", help="only fill the topics")
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    parser.add_argument("--pg-url", help="default: LEDGER_BENCH_PG_URL, else the deploy cluster's")
    args = parser.parse_args()
    args.pg_url = args.pg_url or default_pg_url()
    return args


def publish(args: argparse.Namespace) -> tuple[LongStream, Topics, dict[str, Any]]:
    """Publish the stream into its topics, unless they already hold it."""
    stream = LongStream.for_records(args.seed, args.records, args.variant)
    topics = scratch_topics(f"bench-long-{stream.name}-p{PARTITIONS}")
    say(f"stream {stream.name}: {stream.periods} periods of ~179k events; publishing")
    fixture = ensure_fixture(args.bootstrap, topics, PARTITIONS, stream)
    say(f"{fixture['records']:,} records in {topics.orders} (reused: {fixture['reused']})")
    return stream, topics, fixture


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Publish (or reuse) the stream's topics and create the run's ledger database."""
    stream, topics, fixture = publish(args)
    ends = end_offsets(args.bootstrap, [topics.orders, topics.accounts])
    with fresh_database(args.pg_url, prefix="bench_long_", ledger=True, keep=True) as url:
        db_url = url
    return {
        "benchmark": "bench/long.py",
        "time": time.strftime("%Y%m%d-%H%M%S"),
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "stream": {"seed": stream.seed, "periods": stream.periods, "variant": stream.variant},
        "fixture": fixture,
        "topics": {"orders": topics.orders, "accounts": topics.accounts},
        "bootstrap": args.bootstrap,
        "records": sum(ends.values()),
        "step": args.step,
        "database": make_url(db_url).database,
        "group": unique("bench-long"),
        "points": [],
        "samples": [],
        "attempts": [],
    }


def main() -> None:
    args = parse()
    if args.render:
        path = Path(args.render)
        long_report.write(json.loads(path.read_text()), path)
        return
    configure_logging("console", "warning")
    if args.publish_only:
        publish(args)
        return
    if args.resume:
        path = Path(args.resume)
        result = json.loads(path.read_text())
    else:
        result = prepare(args)
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"long-{result['time']}-{args.variant}.json"

    def save() -> None:
        long_report.write(result, path)

    run = Run(result, save, result["step"], args.stall)
    result["attempts"].append({"started": time.strftime("%H:%M:%S"), "error": None})
    log = Path(tempfile.mkdtemp(prefix="bench-long-")) / "consumer.log"
    say(f"consuming {result['records']:,} records; figures in {path.with_suffix('')}.*")
    try:
        run.go(log)
    except BaseException as exc:
        result["attempts"][-1]["error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        result["complete"] = False
        save()
        run.store.dispose()
        say(f"FAILED: {result['attempts'][-1]['error'][:400]}")
        say(f"the ledger database is kept; go on with: bench/long.py --resume {path}")
        raise
    result.update(run.counts(), complete=True)
    run.store.dispose()
    if not args.keep:
        drop_database(args.pg_url, result["database"])
        result["database"] = None
    save()
    print(long_report.markdown(result))
    say(f"wrote {path.with_suffix('')}.json/.md/.png")


if __name__ == "__main__":
    main()
