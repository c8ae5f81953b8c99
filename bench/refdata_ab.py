"""Issue 23 §4's before/after: run it once per tree, with that tree first on the path.

    PYTHONPATH=<tree> .venv/bin/python bench/refdata_ab.py pg 12000
    PYTHONPATH=<tree> .venv/bin/python bench/refdata_ab.py replay 8000
    PYTHONPATH=<tree> .venv/bin/python bench/refdata_ab.py store 8000

``pg``: ingest into PostgreSQL in batches of 1,000, then a full verify (wall seconds);
``replay``: verify's replay path (rules, SQL loader and writer over SQLite), CPU seconds;
``store``: ``write_changes`` and the loader alone, CPU seconds.

Imports only what both trees have, so an export of the commit before (``git archive``)
runs it as well. Prints one JSON object (the tree, seconds, the ledger head for ``pg``).
Env for ``pg``: as bench/support.py's ``fresh_database`` (LEDGER_BENCH_PG_URL, …).
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from typing import Any

import ledger
from ledger.domain.events import Event
from ledger.domain.processor import Incoming, process
from ledger.domain.state import WorkingState
from ledger.simulate import generate
from ledger.store import audit, replay
from ledger.store.state_sql import write_changes


def _events(orders: int) -> list[Event]:
    return generate(11, sharers=300, buyers=3000, orders=orders, clicks_per_order=3, days=40).all()


def pg(orders: int) -> dict[str, Any]:
    from bench.support import default_pg_url, fresh_database
    from ledger.service import LedgerService, Received
    from ledger.store.opening import open_store
    from ledger.store.verify import verify

    events = _events(orders)
    items = [
        Received(e, f"ab@{n}", f"ab/{zlib.crc32(e.ordering_key().encode()) % 4}")
        for n, e in enumerate(events)
    ]
    with fresh_database(default_pg_url(), prefix="refdata_ab_", ledger=True) as url:
        store = open_store(url)
        service = LedgerService(store)
        started = time.perf_counter()
        for start in range(0, len(items), 1000):
            service.ingest(items[start : start + 1000])
        ingest = time.perf_counter() - started
        started = time.perf_counter()
        report = verify(store)
        checked = time.perf_counter() - started
        store.dispose()
    return {
        "events": len(items),
        "ingest_s": round(ingest, 2),
        "verify_s": round(checked, 2),
        "ok": report.ok,
        "head": report.head,
    }


def replay_cpu(orders: int) -> dict[str, Any]:
    events = _events(orders)
    incoming = [Incoming(e, n, "ab", f"ab/{n % 4}") for n, e in enumerate(events, 1)]
    store = audit.AuditStore()
    with store.engine.connect() as state:
        transaction = state.begin()
        started = time.process_time()
        for start in range(0, len(incoming), 1000):
            replay._apply_and_record(state, incoming[start : start + 1000], touched=True)
        cpu = time.process_time() - started
        transaction.rollback()
    store.dispose()
    return {"events": len(events), "cpu_s": round(cpu, 2)}


def store_cpu(orders: int) -> dict[str, Any]:
    state = WorkingState()
    process([Incoming(e, n, "ab", "c") for n, e in enumerate(_events(orders), 1)], state)
    c = state.changes()
    store = audit.AuditStore()
    write = load = 0.0
    for _ in range(5):
        with store.engine.connect() as conn:
            transaction = conn.begin()
            started = time.process_time()
            write_changes(conn, audit.insert_rows, c, 1)
            written = time.process_time()
            loader = audit.ReplayLoader(conn)
            loader.sharers([s.sharer_id for s in c.sharers])
            loader.clicks([k.click_id for k in c.clicks])
            loader.orders([o.order_id for o in c.new_orders])
            loader.payouts([p.payout_id for p in c.new_payouts])
            loader.refunds([r for r, _ in c.refunds])
            loader.orders_due(10**15)
            write += written - started
            load += time.process_time() - written
            transaction.rollback()
    store.dispose()
    return {
        "rows": len(c.clicks) + len(c.new_orders),
        "write_cpu_s": round(write, 2),
        "load_cpu_s": round(load, 2),
    }


if __name__ == "__main__":
    mode, orders = sys.argv[1], int(sys.argv[2])
    result = {"pg": pg, "replay": replay_cpu, "store": store_cpu}[mode](orders)
    print(json.dumps({"tree": ledger.__file__.rsplit("/ledger/", 1)[0], **result}))
