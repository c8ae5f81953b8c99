"""Verify on a large ledger: the full check before and after issue 22 (the replay's state
in one in-memory dict, against batches through a SQLite replay store), and the daily check
(a day's events on top of the ledger, from its signed checkpoint), in one run.

    python -m bench.verify_incremental --postings 200000 [--day 0.01] [--pg-url URL]

Prints one JSON object: entries/min and seconds of each, and the peak RSS after each
(ru_maxrss only grows: the bounded replay runs first, so its figure is its own).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from sqlalchemy import func, select

from bench.large import BATCH, CHAINS, POSTINGS_PER_ORDER
from bench.support import LedgerService, Received, default_pg_url, fresh_database, open_store
from bench.workloads import orders_only
from ledger.checkpoint import keygen, load_private_key
from ledger.runtime import tune_gc_for_throughput
from ledger.store import tables
from ledger.store.audit import AuditStore
from ledger.store.checkpoints import sign_checkpoint
from ledger.store.verifier import verify_snapshot
from ledger.store.verify import verify

BEFORE = "5b83866"  # main before issue 22's verify work: the in-memory replay


def _old_replay() -> Any:
    """The replay as it was (ledger/store/replay.py at ``BEFORE``), loaded beside the new."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:ledger/store/replay.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    spec = importlib.util.spec_from_loader("old_replay", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, "old_replay.py", "exec"), module.__dict__)  # our own file, as it was
    return module


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ingest(service: LedgerService, events: list[Any], offset: int) -> None:
    for start in range(0, len(events), BATCH):
        chain = f"bench/{((offset + start) // BATCH) % CHAINS}"
        batch = [
            Received(e, f"bench:{offset + start + i}", chain)
            for i, e in enumerate(events[start : start + BATCH])
        ]
        service.ingest(batch)


def run(pg_url: str, postings: int, day: float, seed: int) -> dict[str, Any]:
    tune_gc_for_throughput()
    orders = int(postings / POSTINGS_PER_ORDER) + 1
    extra = max(1, int(orders * day))
    events = orders_only(seed, orders + extra)
    # the day's events: the last orders' events, after the checkpoint
    cut = len(events) * orders // (orders + extra)
    history, today = events[:cut], events[cut:]
    result: dict[str, Any] = {"events": len(history), "day_events": len(today)}
    with fresh_database(pg_url, prefix="bench_verify_") as url, TemporaryDirectory() as tmp:
        store = open_store(url)
        service = LedgerService(store)
        _ingest(service, history, 0)
        entries = _entries(store)
        result["entries"] = entries

        started = time.perf_counter()
        report = verify(store)
        full_s = time.perf_counter() - started
        result["full_after"] = _figures(report, full_s, entries)
        result["full_after"]["peak_rss_mib"] = round(_rss_mib())

        old = _old_replay()
        started = time.perf_counter()
        with store.read() as conn:
            old_report = verify_snapshot(
                conn, batch_size=10_000, expect_head=None, replay=old.check_replay
            )
        old_s = time.perf_counter() - started
        result["full_before"] = _figures(old_report, old_s, entries)
        result["full_before"]["peak_rss_mib"] = round(_rss_mib())

        key = load_private_key(keygen()[0])
        state = AuditStore(Path(tmp) / "audit.sqlite")
        checkpoint = sign_checkpoint(store, key, 1_900_000_000_000)
        started = time.perf_counter()
        kept = verify(store, state=state, keep_at=checkpoint)
        result["full_keeping_state"] = _figures(kept, time.perf_counter() - started, entries)

        _ingest(service, today, len(history))
        total = _entries(store)
        started = time.perf_counter()
        daily = verify(store, state=state, since=checkpoint)
        daily_s = time.perf_counter() - started
        result["daily"] = _figures(daily, daily_s, int(total) - int(entries))
        result["daily"]["seconds_vs_full"] = round(daily_s / full_s, 3)
        state.dispose()
        store.dispose()
    return result


def _entries(store: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.entries)).scalar_one())


def _figures(report: Any, seconds: float, entries: int) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "seconds": round(seconds, 2),
        "entries_per_min": round(entries / seconds * 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=200_000)
    parser.add_argument("--day", type=float, default=0.01, help="the day's share of the orders")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    print(
        json.dumps(
            run(args.pg_url or default_pg_url(), args.postings, args.day, args.seed), indent=2
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
