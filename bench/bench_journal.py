"""Benchmark of the journal write path and verify on PostgreSQL (or SQLite).

    LEDGER_BENCH_DB_URL=<a scratch database URL (as its owner)> \
        .venv/bin/python bench/bench_journal.py [--entries 20000]

Use a scratch database: the script appends to chains named ``bench/<run id>/…``.
Reports rows/s (entries and postings) for batches of 1,000 entries per transaction
against one entry per transaction, COPY against multi-row INSERT for bulk_insert, and
verify's throughput.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from sqlalchemy import func, select

from ledger.domain.entries import JournalEntry, Posting
from ledger.store import tables
from ledger.store.opening import open_store
from ledger.store.verify import verify

POSTINGS_PER_ENTRY = 5


def make_entries(prefix: str, count: int) -> list[JournalEntry]:
    entries = []
    for i in range(count):
        pool = 2320 + i % 97
        fee = pool * 8 // 100
        entries.append(
            JournalEntry(
                event_id=f"{prefix}-{i}",
                ordinal=0,
                kind="accrual",
                rule="order_placed/v1",
                occurred_at=1_700_000_000_000 + i,
                postings=(
                    Posting(f"merchant:M{i % 50}:charges", "CNY", -pool),
                    Posting(f"sharer:S{i % 1000}:pending", "CNY", (pool - fee) // 2),
                    Posting(f"sharer:S{(i + 1) % 1000}:pending", "CNY", (pool - fee) // 4),
                    Posting(
                        f"sharer:S{(i + 2) % 1000}:pending",
                        "CNY",
                        pool - fee - (pool - fee) // 2 - (pool - fee) // 4,
                    ),
                    Posting("platform:fees", "CNY", fee),
                ),
                order_id=f"O-{prefix}-{i}",
                plan_id="P1",
            )
        )
    return entries


def timed_append(store, chain: str, entries: list[JournalEntry], batch: int) -> float:
    start = time.perf_counter()
    for offset in range(0, len(entries), batch):
        with store.begin() as conn:
            store.append_entries(conn, chain, entries[offset : offset + batch], recorded_at=1)
    return time.perf_counter() - start


def report(label: str, entries: int, seconds: float) -> None:
    rows = entries * (1 + POSTINGS_PER_ENTRY)
    print(
        f"{label:<42} {entries:>7} entries {seconds:7.2f} s  "
        f"{entries / seconds:>9,.0f} entries/s  {rows / seconds:>10,.0f} rows/s"
    )


def bench_bulk_insert(store, rows: int) -> None:
    """COPY (store.bulk_insert) against one multi-row INSERT of the same events rows."""
    run = uuid.uuid4().hex[:8]
    for label, use_copy in (("bulk_insert (COPY/executemany)", True), ("multi-row INSERT", False)):
        payload = [
            {
                "seq": None,
                "event_id": f"{run}-{label[:4]}-{i}",
                "type": "order_placed",
                "occurred_at": i,
                "recorded_at": i,
                "source": "bench",
                "outcome": "applied",
                "payload": '{"order_id":"O1","lines":[{"amount":8800}]}',
            }
            for i in range(rows)
        ]
        start = time.perf_counter()
        with store.begin() as conn:
            for row, seq in zip(payload, store.allocate(conn, "events", rows), strict=True):
                row["seq"] = seq
            if use_copy:
                store.bulk_insert(conn, tables.events, payload)
            else:
                conn.execute(tables.events.insert().values(payload))
        seconds = time.perf_counter() - start
        print(f"{label:<42} {rows:>7} rows    {seconds:7.3f} s  {rows / seconds:>10,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=1_000, help="entries, one per txn")
    args = parser.parse_args()
    url = os.environ.get("LEDGER_BENCH_DB_URL") or os.environ.get("LEDGER_TEST_PG_URL")
    if not url:
        raise SystemExit("set LEDGER_BENCH_DB_URL (a scratch database)")
    store = open_store(url)
    run = uuid.uuid4().hex[:8]
    print(f"backend {store.backend}, run {run}")
    try:
        batched = make_entries(f"{run}-b", args.entries)
        report(
            "append_entries, 1,000 per transaction",
            args.entries,
            timed_append(store, f"bench/{run}/batched", batched, 1_000),
        )
        single = make_entries(f"{run}-s", args.single)
        report(
            "append_entries, 1 per transaction",
            args.single,
            timed_append(store, f"bench/{run}/single", single, 1),
        )
        for rows in (1_000, 10_000):
            bench_bulk_insert(store, rows)
        with store.read() as conn:
            total = conn.execute(select(func.count()).select_from(tables.entries)).scalar()
        start = time.perf_counter()
        result = verify(store)
        seconds = time.perf_counter() - start
        print(
            f"verify: ok={result.ok} {total} entries in {seconds:.2f} s "
            f"({total / seconds:,.0f} entries/s, {total / seconds * 60:,.0f} entries/min); "
            f"head {result.head}"
        )
    finally:
        store.dispose()


if __name__ == "__main__":
    main()
