"""PostgreSQL's CPU per record as the ledger grows (issue 22 §1, §3).

    .venv/bin/python bench/pg_cost.py [--small 200000] [--big 2000000] [--step 100000]
        [--streams orders,mix] [--schemas before,after] [--keep]

For each stream (``orders``: one click + one order per order, each from its own buyer;
``mix``: simulate.generate's setup and activity, sharers and buyers growing with the
orders), one ledger is built through ``LedgerService.ingest`` (no Kafka) at the schema
revision before this change's migration, and copied (``CREATE DATABASE … TEMPLATE``) when
it holds ``--small`` and ``--big`` records. Each copy is measured twice, as it is
("before") and upgraded to the latest revision ("after"): after a warm-up of ``--warm``
records, a VACUUM (ANALYZE) and a checkpoint, the next ``--step`` records go through
``LedgerService.ingest`` while we read

- the cluster's CPU from /proc (the postmaster, its live and exited children), split into
  the backends and the background processes (checkpointer, WAL writer, autovacuum, ...);
- pg_stat_statements (per statement: time, shared blocks hit / read / dirtied, WAL bytes
  and full-page images), per index and table the blocks read and hit
  (pg_statio_user_*), and the WAL written (pg_stat_wal).

Target: PostgreSQL CPU per record flat (big / small <= 1.2). The copies are reused by a
later run with ``--keep`` (one build serves any number of runs: building 2M records takes
minutes). Env: LEDGER_BENCH_PG_URL (the test role's URL of the deploy cluster), or
.cache/postgres.env.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from bench.large import Outages
from bench.support import (
    RESULTS,
    Event,
    LedgerService,
    Received,
    cpu_seconds,
    default_pg_url,
    generate,
    open_store,
    role_url,
    tune_gc_for_throughput,
)
from bench.workloads import orders_only
from ledger.store.opening import alembic_config, head_revision, run_migrations

BATCH = 2_000  # events per ingest call, as bench/large.py
CHAINS = 4
PREFIX = "pgcost_"
BACKGROUND = ("checkpointer", "background writer", "walwriter", "autovacuum", "logical")


def before_revision() -> str:
    """The revision this change's migration (0007) upgrades from."""
    down = ScriptDirectory.from_config(alembic_config()).get_revision("0007").down_revision
    assert isinstance(down, str)
    return down


# --- the streams ------------------------------------------------------------------------


def stream(name: str, records: int, seed: int) -> list[Event]:
    """At least ``records`` events of stream ``name``, in publish order."""
    if name == "orders":
        return orders_only(seed, records // 2 + 1, sharers=10_000)
    # The default mix per 30k orders (500 sharers, 20k buyers, 20 days) scaled with the
    # orders, so a day of records looks alike at any size. Its first ~20 days are clicks
    # ramping up and its last days completions and refunds winding down: the stream is
    # made longer than needed so that the measured records are from the steady middle.
    orders = (records + 200_000) // 5  # ~5.8 activity records per order
    work = generate(
        seed=seed,
        sharers=max(500, orders // 60),
        buyers=max(20_000, orders * 2 // 3),
        orders=orders,
        days=max(20, orders // 1_500),
    )
    events = work.setup + work.activity  # the settlement run is not per-record work
    assert len(events) >= records, (len(events), records)
    return events


# --- databases --------------------------------------------------------------------------


class Cluster:
    """The deploy cluster as the test role sees it: databases, copies, statistics."""

    def __init__(self, pg_url: str) -> None:
        self.url = make_url(pg_url)
        self.admin = create_engine(
            self.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        self.owner = make_url(role_url("LEDGER_TEST_PG_OWNER_URL", "LEDGER_MIGRATE_DB_URL"))

    def sql(self, statement: str, **params: Any) -> list[Any]:
        with self.admin.connect() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []

    def exists(self, name: str) -> bool:
        return bool(self.sql("SELECT 1 FROM pg_database WHERE datname = :n", n=name))

    def create(self, name: str, template: str | None = None) -> str:
        """A new database owned by the owner role (a copy of ``template``); its URL."""
        copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.sql(f'CREATE DATABASE "{name}" OWNER "{self.owner.username}"{copy}')
        return self.db_url(name)

    def drop(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def db_url(self, name: str) -> str:
        return self.owner.set(database=name).render_as_string(hide_password=False)

    def postmaster(self) -> int:
        # read while the connection is open: its backend exits when it closes (NullPool)
        with self.admin.connect() as conn:
            backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            return _ppid(backend)

    def cpu(self) -> dict[str, float]:
        """CPU seconds of this cluster so far: backends (the exited ones included) and
        background processes."""
        master = self.postmaster()
        out = {"backends": cpu_seconds(master, children=True), "background": 0.0}
        for pid in Path("/proc").iterdir():
            if not pid.name.isdigit():
                continue
            try:
                if _ppid(int(pid.name)) != master:
                    continue
                title = (pid / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError):
                continue
            kind = "background" if any(b in title for b in BACKGROUND) else "backends"
            out[kind] += cpu_seconds(int(pid.name))
        return out

    def wal(self) -> dict[str, int]:
        row = self.sql("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")[0]
        return {"records": int(row[0]), "fpi": int(row[1]), "bytes": int(row[2])}


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def ingest(service: LedgerService, events: list[Event], first: int, outages: Outages) -> None:
    """Events through ``LedgerService.ingest`` in batches over four chains; ``first`` is
    the stream position of ``events[0]`` (it names the source and the chain)."""
    for start in range(0, len(events), BATCH):
        position = first + start
        chain = f"bench/{(position // BATCH) % CHAINS}"
        batch = [
            Received(e, f"bench:{position + i}", chain)
            for i, e in enumerate(events[start : start + BATCH])
        ]
        outages.run(lambda batch=batch: service.ingest(batch))


@contextmanager
def service_on(url: str, migrate: bool = False) -> Iterator[LedgerService]:
    store = open_store(url, migrate=migrate)
    try:
        yield LedgerService(store)
    finally:
        store.dispose()  # the backends exit and flush their statistics


def build(cluster: Cluster, name: str, events: list[Event], sizes: list[int], base: str) -> None:
    """One ledger at revision ``base`` grown to each of ``sizes`` records in turn, copied
    to ``<name>_<size>`` at each."""
    building = f"{name}_build"
    cluster.drop(building)
    url = cluster.create(building)
    run_migrations_at(url, base)
    done = 0
    outages = Outages(url)
    for size in sizes:
        started = time.perf_counter()
        with service_on(url) as service:
            ingest(service, events[done:size], done, outages)
        print(f"  built {size:,} records ({time.perf_counter() - started:.0f} s)", flush=True)
        done = size
        cluster.drop(f"{name}_{size}")
        cluster.create(f"{name}_{size}", template=building)
    cluster.drop(building)


def run_migrations_at(url: str, revision: str) -> None:
    store = open_store(url, migrate=False)
    try:
        run_migrations(store, revision)
    finally:
        store.dispose()


# --- one measured step ----------------------------------------------------------------


STATEMENTS = """
SELECT query, calls, total_exec_time, rows, shared_blks_hit, shared_blks_read,
       shared_blks_dirtied, shared_blks_written, wal_fpi, wal_bytes
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = :db)
ORDER BY total_exec_time DESC LIMIT 25
"""
RELATIONS = """
SELECT s.relname AS name, 'table' AS kind, pg_relation_size(s.relid) AS bytes,
       coalesce(s.heap_blks_read, 0) AS read, coalesce(s.heap_blks_hit, 0) AS hit,
       t.n_tup_ins + t.n_tup_upd AS written, t.n_tup_hot_upd AS hot
FROM pg_statio_user_tables s JOIN pg_stat_user_tables t USING (relid)
UNION ALL
SELECT s.indexrelname, 'index', pg_relation_size(s.indexrelid),
       coalesce(s.idx_blks_read, 0), coalesce(s.idx_blks_hit, 0), 0, 0
FROM pg_statio_user_indexes s
"""


def relations(url: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return {r.name: dict(r._mapping) for r in conn.execute(text(RELATIONS))}
    finally:
        engine.dispose()


def vacuum(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    finally:
        engine.dispose()


def measure(
    cluster: Cluster, database: str, events: list[Event], first: int, warm: int
) -> dict[str, Any]:
    """Ingest ``events`` (stream positions from ``first``) into ``database``: the first
    ``warm`` unmeasured, the rest measured."""
    url = cluster.db_url(database)
    outages = Outages(url)
    with service_on(url) as service:
        ingest(service, events[:warm], first, outages)
    # A copy starts without statistics, so autovacuum would first analyze and vacuum it
    # whole inside the measured step: both copies start vacuumed and analyzed instead.
    vacuum(url)
    cluster.sql("CHECKPOINT")
    stats_before = relations(url)
    cluster.sql(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = :db), 0)",
        db=database,
    )
    cpu0, wal0 = cluster.cpu(), cluster.wal()
    client0, started = time.process_time(), time.perf_counter()
    with service_on(url) as service:
        ingest(service, events[warm:], first + warm, outages)
    seconds = time.perf_counter() - started - outages.lost
    client = time.process_time() - client0
    time.sleep(0.5)  # the exited backends' statistics reach the collector
    cpu1, wal1 = cluster.cpu(), cluster.wal()
    records = len(events) - warm
    per = 1e6 / records
    statements = [
        {
            "query": " ".join(r.query.split())[:160],
            "calls": int(r.calls),
            "us_per_record": round(r.total_exec_time * 1000 / records, 2),
            "blocks_hit_per_record": round(r.shared_blks_hit / records, 2),
            "blocks_read_per_record": round(r.shared_blks_read / records, 3),
            "blocks_dirtied_per_record": round(r.shared_blks_dirtied / records, 3),
            "fpi_per_record": round(r.wal_fpi / records, 3),
            "wal_bytes_per_record": round(int(r.wal_bytes) / records, 1),
        }
        for r in cluster.sql(STATEMENTS, db=database)
    ]
    stats_after = relations(url)
    rels = {
        name: {
            "kind": after["kind"],
            "mib": round(after["bytes"] / 2**20, 1),
            "blocks_read_per_record": round(
                (after["read"] - stats_before[name]["read"]) / records, 3
            ),
            "blocks_hit_per_record": round((after["hit"] - stats_before[name]["hit"]) / records, 2),
            "rows_written_per_record": round(
                (after["written"] - stats_before[name]["written"]) / records, 3
            ),
            "hot_updates_per_record": round(
                (after["hot"] - stats_before[name]["hot"]) / records, 3
            ),
        }
        for name, after in stats_after.items()
        if name in stats_before
    }
    return {
        "records": records,
        "seconds": round(seconds, 2),
        "records_per_s": round(records / seconds),
        "pg_cpu_us_per_record": round((sum(cpu1.values()) - sum(cpu0.values())) * per, 1),
        "pg_backend_us_per_record": round((cpu1["backends"] - cpu0["backends"]) * per, 1),
        "pg_background_us_per_record": round((cpu1["background"] - cpu0["background"]) * per, 1),
        "client_us_per_record": round(client * per, 1),
        "wal_bytes_per_record": round((wal1["bytes"] - wal0["bytes"]) / records, 1),
        "wal_fpi_per_record": round((wal1["fpi"] - wal0["fpi"]) / records, 3),
        "statements": statements,
        "relations": rels,
        "database_mib": round(sum(r["bytes"] for r in stats_after.values()) / 2**20, 1),
    }


def summary(result: dict[str, Any]) -> str:
    return (
        f"PostgreSQL {result['pg_cpu_us_per_record']} µs/record (backends "
        f"{result['pg_backend_us_per_record']}, background {result['pg_background_us_per_record']}"
        f"), WAL {result['wal_bytes_per_record']} B/record, {result['records_per_s']:,} records/s"
    )


def run(
    pg_url: str,
    *,
    small: int,
    big: int,
    step: int,
    warm: int,
    streams: list[str],
    schemas: list[str],
    seed: int,
    keep: bool,
) -> dict[str, Any]:
    tune_gc_for_throughput()
    cluster = Cluster(pg_url)
    base, head = before_revision(), head_revision()
    revisions = {"before": base, "after": head}
    out: dict[str, Any] = {
        "sizes": {"small": small, "big": big, "step": step, "warm": warm},
        "revisions": revisions,
        "settings": dict(
            cluster.sql(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                "('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'server_version')"
            )
        ),
    }
    for name in streams:
        events = stream(name, big + warm + step, seed)
        stem = f"{PREFIX}{name}_s{seed}_r{base}"
        sizes = [small, big]
        if not all(cluster.exists(f"{stem}_{size}") for size in sizes):
            print(f"{name}: building {big:,} records at revision {base}", flush=True)
            build(cluster, stem, events, sizes, base)
        results: dict[str, Any] = {}
        for size in sizes:
            chunk = events[size : size + warm + step]
            for schema in schemas:
                database = f"{PREFIX}m_{name}_{size}_{schema}"
                cluster.drop(database)
                cluster.create(database, template=f"{stem}_{size}")
                if schema == "after":
                    started = time.perf_counter()
                    run_migrations_at(cluster.db_url(database), head)
                    migrated = round(time.perf_counter() - started, 1)
                result = measure(cluster, database, chunk, size, warm)
                if schema == "after":
                    result["migration_seconds"] = migrated
                results[f"{size}_{schema}"] = result
                cluster.drop(database)
                print(f"{name} {size:,} {schema}: {summary(result)}", flush=True)
        for schema in schemas:
            small_cpu = results[f"{small}_{schema}"]["pg_cpu_us_per_record"]
            big_cpu = results[f"{big}_{schema}"]["pg_cpu_us_per_record"]
            results[f"growth_{schema}"] = round(big_cpu / small_cpu, 3)
        out[name] = results
        if not keep:
            for size in sizes:
                cluster.drop(f"{stem}_{size}")
        del events
    return out


def growths(result: dict[str, Any]) -> dict[str, float]:
    """big / small CPU per record, per stream and schema."""
    return {
        f"{stream} {key.removeprefix('growth_')}": value
        for stream in ("orders", "mix")
        for key, value in result.get(stream, {}).items()
        if key.startswith("growth_")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=2_000_000)
    parser.add_argument("--step", type=int, default=100_000, help="records measured")
    parser.add_argument("--warm", type=int, default=10_000, help="records before the step")
    parser.add_argument("--streams", default="orders,mix")
    parser.add_argument("--schemas", default="before,after")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the built ledgers for reuse")
    parser.add_argument("--pg-url", default=os.environ.get("LEDGER_BENCH_PG_URL"))
    args = parser.parse_args()
    result = run(
        args.pg_url or default_pg_url(),
        small=args.small,
        big=args.big,
        step=args.step,
        warm=args.warm,
        streams=args.streams.split(","),
        schemas=args.schemas.split(","),
        seed=args.seed,
        keep=args.keep,
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"pg-cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k in ("sizes", "settings")}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
