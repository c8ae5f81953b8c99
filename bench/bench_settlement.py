"""Issue 22 §1: one settlement run over >= 1M due orders, and the peak RSS of the process
that applies it (target: under 500 MiB).

    .venv/bin/python bench/bench_settlement.py [--orders 1000000] [--sharers 20000]
        [--before DIR]   # a tree of the code before the change (git archive main | tar -x)

1. Builds a PostgreSQL ledger in a scratch database: the simulator's plans, a forest of
   ``--sharers`` sharers, then ``--reference`` orders, each a click, the order naming it
   and its completion, through ``LedgerService.ingest`` (ingestion's own path); then
   ``replicate`` copies those orders' rows under new ids until ``--orders`` orders are due,
   and multiplies the balances alike: the rows ingestion writes for copies of the same
   events (tests/integration/test_bench_settlement.py holds the two equal). Minutes
   instead of an hour on a shared machine. The accrual entries of the copies are not in
   the journal: a run reads the orders and the balances, not the journal.
2. With ``--before``: copies the database (CREATE DATABASE … TEMPLATE) and takes the copy
   back to the schema of that code (the migrations' own downgrade).
3. Applies one settlement run settling every order through the real path: ``ledger
   ingest`` of a one-line file, in a subprocess, before (the ``--before`` tree) and after
   (this tree), back to back. Reports each process's peak RSS (VmHWM, read from
   /proc/self/status as it exits), its wall time, and whether both ledgers end with the
   same chain heads (the same entries and hashes).

Env: LEDGER_BENCH_PG_URL (else the deploy cluster's test admin URL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.pool import NullPool

from bench.support import (
    PRODUCER,
    REPO,
    RESULTS,
    START,
    ClickRecorded,
    Event,
    LedgerService,
    OrderLine,
    OrderPlaced,
    Received,
    configure_logging,
    default_pg_url,
    dump_event,
    fresh_database,
    migrate_for_service,
    open_store,
    plans,
    tables,
    tune_gc_for_throughput,
)
from bench.workloads import forest, sharer_ids
from ledger.domain.events import OrderCompleted, SettlementRun

DAY_MS = 86_400_000
BATCH = 10_000  # events per ingest transaction while building
TARGET_MIB = 500
AS_OF = START + 30 * DAY_MS  # every order completed by day 21, frozen 7 days: all due
BEFORE_REVISION = "0005"  # the schema the code before issue 22 knows

# `ledger` (ledger.cli:main), reporting its peak RSS on stderr as it exits
CHILD = (
    "import atexit, sys\n"
    "def peak():\n"
    "    with open('/proc/self/status') as status:\n"
    "        line = next(l for l in status if l.startswith('VmHWM:'))\n"
    "    sys.stderr.write(f'PEAK_KIB {line.split()[1]}\\n')\n"
    "atexit.register(peak)\n"
    "import ledger, ledger.cli\n"
    "sys.stderr.write(f'CODE {ledger.__file__}\\n')\n"
    "sys.argv = ['ledger', *sys.argv[1:]]\n"
    "ledger.cli.main()\n"
)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def events(orders: int, sharers: int, seed: int) -> Iterator[Event]:
    """Plans, the forest, then per order a click, the order and its completion."""
    rng = random.Random(seed)
    yield from plans()
    yield from forest(rng, sharers)
    ids = sharer_ids(sharers)
    step = max(1, (20 * DAY_MS) // max(1, orders))  # orders over 20 days
    for n in range(orders):
        at = START + DAY_MS + n * step
        buyer, click_id, order_id = f"b{n:07d}", f"clk-{n:07d}", f"ord-{n:07d}"
        yield ClickRecorded(
            f"ev-{click_id}",
            at - 60_000,
            PRODUCER,
            click_id=click_id,
            sharer_id=rng.choice(ids),
            buyer_id=buyer,
            product_id="sku",
        )
        yield OrderPlaced(
            f"ev-{order_id}",
            at,
            PRODUCER,
            order_id=order_id,
            buyer_id=buyer,
            merchant_id=f"m{rng.randrange(8):02d}",
            currency="CNY",
            lines=(OrderLine("l0", "sku", 1, rng.randrange(500, 30_000)),),
            click_id=click_id,
        )
        yield OrderCompleted(
            f"ev-done-{n:07d}", at + 1, PRODUCER, order_id=order_id, buyer_id=buyer
        )


def build(url: str, orders: int, sharers: int, seed: int) -> float:
    """The ledger with ``orders`` due orders, by ingestion; returns the seconds it took."""
    store = open_store(url)
    service = LedgerService(store)
    started = time.perf_counter()
    batch: list[Received] = []
    for n, event in enumerate(events(orders, sharers, seed)):
        batch.append(Received(event, f"bench:{n}", f"bench/{(n // BATCH) % 4}"))
        if len(batch) == BATCH:
            service.ingest(batch)
            batch = []
    service.ingest(batch)
    store.dispose()
    return time.perf_counter() - started


# Copy k of an order: its row under the id "<order id>~k" (k = 1 … copies - 1), exactly
# the row ingestion writes for the same OrderPlaced and OrderCompleted under that id.
REPLICATE_ORDERS = """
INSERT INTO orders
SELECT o.order_id || '~' || lpad(k::text, 4, '0'), o.buyer_id, o.merchant_id, o.currency,
       o.occurred_at, o.plan_id, o.levels, o.lines, o.posted, o.no_commission_reason,
       o.completed_at, o.settled_by, o.settle_due
FROM orders o CROSS JOIN generate_series(1, :copies - 1) AS k
"""
# ... and the balances those copies' accruals would have added (every balance comes from
# accruals: the reference ledger has no refund, run or payout)
REPLICATE_BALANCES = "UPDATE account_balances SET balance = balance * :copies"


def replicate(url: str, copies: int) -> float:
    """Every order of the ledger ``copies`` times; returns the seconds it took."""
    columns = [c.name for c in tables.orders.columns]
    expected = ["order_id", "buyer_id", "merchant_id", "currency", "occurred_at", "plan_id"]
    expected += ["levels", "lines", "posted", "no_commission_reason", "completed_at"]
    assert columns == [*expected, "settled_by", "settle_due"], columns  # REPLICATE's order
    engine = create_engine(url, poolclass=NullPool)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            conn.execute(text(REPLICATE_ORDERS), {"copies": copies})
            conn.execute(text(REPLICATE_BALANCES), {"copies": copies})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE orders"))
    finally:
        engine.dispose()
    return time.perf_counter() - started


def copy_database(admin_url: str, source: str, prefix: str) -> str:
    """A copy of database ``source`` (no session may be connected to it); its name."""
    name = f"{prefix}{int(time.time())}_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            owner = conn.execute(
                text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :d"),
                {"d": source},
            ).scalar_one()
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}" OWNER "{owner}"'))
    finally:
        admin.dispose()
    return name


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def downgrade(owner_url: str, revision: str) -> None:
    from alembic import command

    from ledger.store.opening import alembic_config, migration_transaction

    store = open_store(owner_url, migrate=False)
    try:
        config = alembic_config()
        with migration_transaction(store) as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        store.dispose()


def settle(db_url: str, code: Path, workdir: Path, label: str) -> dict[str, Any]:
    """One settlement run through `ledger ingest` (the code of tree ``code``) in a
    subprocess: its peak RSS, its wall time, its report line."""
    run = SettlementRun("ev-run-1", AS_OF, PRODUCER, run_id="run-1", as_of=AS_OF)
    path = workdir / f"run-{label}.jsonl"
    path.write_text(dump_event(run) + "\n")
    env = {**os.environ, "PYTHONPATH": str(code), "LEDGER_LOG_LEVEL": "warning"}
    env.pop("LEDGER_CONFIG", None)
    args = [sys.executable, "-c", CHILD, "ingest", str(path), "--db", db_url]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=code, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label}: ledger ingest failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    lines = done.stderr.splitlines()
    peak = next(int(x.split()[1]) for x in lines if x.startswith("PEAK_KIB "))
    used = next(x.split(" ", 1)[1] for x in lines if x.startswith("CODE "))
    if not used.startswith(str(code)):
        raise SystemExit(f"{label}: ran {used}, not the code of {code}")
    return {
        "peak_rss_mib": round(peak / 1024, 1),
        "seconds": round(seconds, 1),
        "output": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "",
    }


def ledger_heads(url: str) -> dict[str, Any]:
    """The chain heads (every chain's last link) and the settled orders, read with plain
    SQL (the copy is at the older schema)."""
    engine = create_engine(url, poolclass=NullPool)
    heads, orders = tables.chain_heads, tables.orders
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(heads.c.chain, heads.c.chain_seq, heads.c.hash))
            settled = conn.execute(
                select(orders.c.order_id).where(orders.c.settled_by.is_not(None))
            )
            return {"heads": sorted(map(tuple, rows)), "settled": len(settled.all())}
    finally:
        engine.dispose()


def run(
    pg_url: str, orders: int, reference: int, sharers: int, seed: int, before: Path | None
) -> dict[str, Any]:
    tune_gc_for_throughput()
    copies = max(1, orders // reference)
    orders = reference * copies
    result: dict[str, Any] = {
        "orders": orders,
        "reference_orders": reference,
        "sharers": sharers,
        "target_mib": TARGET_MIB,
    }
    with fresh_database(pg_url, prefix="bench_settle_") as owner_url:
        service_url = migrate_for_service(owner_url)
        result["build_seconds"] = round(build(service_url, reference, sharers, seed), 1)
        result["replicate_seconds"] = round(replicate(service_url, copies), 1)
        say(f"{orders:,} due orders: {result['build_seconds']} s + {copies} copies")
        database = make_url(owner_url).database
        assert database is not None
        with tempfile.TemporaryDirectory(prefix="bench-settle-") as tmp:
            if before is not None:
                copy = copy_database(pg_url, database, "bench_settle_before_")
                try:
                    downgrade(
                        make_url(owner_url).set(database=copy).render_as_string(False),
                        BEFORE_REVISION,
                    )
                    copy_url = make_url(service_url).set(database=copy)
                    copy_service = copy_url.render_as_string(hide_password=False)
                    result["before"] = settle(copy_service, before, Path(tmp), "before")
                    say(f"before: {result['before']}")
                    before_heads = ledger_heads(copy_service)
                finally:
                    drop_database(pg_url, copy)
            result["after"] = settle(service_url, REPO, Path(tmp), "after")
            say(f"after: {result['after']}")
            after_heads = ledger_heads(service_url)
        result["settled"] = after_heads["settled"]
        if before is not None:
            result["same_ledger_before_and_after"] = before_heads == after_heads
    peak = result["after"]["peak_rss_mib"]
    result["target_met"] = peak < TARGET_MIB and result["settled"] >= orders
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=10_000, help="orders ingested")
    parser.add_argument("--sharers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--before", type=Path, help="tree of the code before the change")
    parser.add_argument("--pg-url", help="default: LEDGER_BENCH_PG_URL, else the deploy cluster's")
    args = parser.parse_args()
    configure_logging("console", "warning")
    url = args.pg_url or default_pg_url()
    result = run(url, args.orders, args.reference, args.sharers, args.seed, args.before)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"settlement-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    say(f"wrote {out}")


if __name__ == "__main__":
    main()
