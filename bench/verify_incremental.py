"""Verify on a large ledger: the full check before and after issue 22 (the replay's state
in one in-memory dict, against batches through a SQLite replay store), and the daily check
(a day's events on top of the ledger, from its signed checkpoint), in one run.

    python -m bench.verify_incremental --postings 200000 [--day 0.01] [--pg-url URL]

The ledger is built in this process (the orders-only stream, like bench/large.py); each
check runs in a child process of its own, so its peak RSS is its own. Prints one JSON
object: seconds, entries/min and peak RSS (MiB) of each check.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
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
from ledger.chain.checkpoint import keygen, load_private_key, parse
from ledger.runtime import tune_gc_for_throughput
from ledger.store import tables
from ledger.store.audit import AuditStore
from ledger.store.checkpoints import sign_checkpoint
from ledger.store.verifier import verify_snapshot
from ledger.store.verify import verify

ROOT = Path(__file__).resolve().parent.parent
URL_ENV = "LEDGER_BENCH_VERIFY_URL"
BEFORE = "5b83866"  # main before issue 22's verify work: the in-memory replay


def _old_replay() -> Any:
    """The replay as it was (ledger/store/replay.py at ``BEFORE``), loaded beside the new."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:ledger/store/replay.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    spec = importlib.util.spec_from_loader("old_replay", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, "old_replay.py", "exec"), module.__dict__)  # our own file, as it was
    return module


def _ingest(service: LedgerService, events: list[Any], offset: int) -> None:
    for start in range(0, len(events), BATCH):
        chain = f"bench/{((offset + start) // BATCH) % CHAINS}"
        batch = [
            Received(e, f"bench:{offset + start + i}", chain)
            for i, e in enumerate(events[start : start + BATCH])
        ]
        service.ingest(batch)


def _entries(store: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.entries)).scalar_one())


def check(mode: str, url: str, state_path: str, checkpoint_path: str) -> dict[str, Any]:
    """One check, timed, in this (child) process."""
    tune_gc_for_throughput()
    store = open_store(url, migrate=False)
    started = time.perf_counter()
    if mode == "before":
        with store.read() as conn:
            report = verify_snapshot(
                conn, batch_size=10_000, expect_head=None, replay=_old_replay().check_replay
            )
    elif mode == "after":
        report = verify(store)
    else:
        checkpoint = parse(Path(checkpoint_path).read_text())
        state = AuditStore(Path(state_path))
        if mode == "keep":
            report = verify(store, state=state, keep_at=checkpoint)
        else:
            report = verify(store, state=state, since=checkpoint)
        state.dispose()
    seconds = time.perf_counter() - started
    store.dispose()
    return {
        "ok": report.ok,
        "seconds": round(seconds, 2),
        "entries_checked": report.entries_checked,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _child(mode: str, url: str, tmp: str) -> dict[str, Any]:
    state, checkpoint = str(Path(tmp) / "audit.sqlite"), str(Path(tmp) / "checkpoint.json")
    args = ["--child", mode, "--state", state, "--checkpoint", checkpoint]
    out = subprocess.run(
        [sys.executable, "-m", "bench.verify_incremental", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, URL_ENV: url},  # not on the command line: it holds a password
    ).stdout
    return dict(json.loads(out))


def run(pg_url: str, postings: int, day: float, seed: int) -> dict[str, Any]:
    tune_gc_for_throughput()
    orders = int(postings / POSTINGS_PER_ORDER) + 1
    extra = max(1, int(orders * day))
    events = orders_only(seed, orders + extra)
    cut = len(events) * orders // (orders + extra)  # the day: the last events
    history, today = events[:cut], events[cut:]
    result: dict[str, Any] = {"events": len(history), "day_events": len(today)}
    with fresh_database(pg_url, prefix="bench_verify_") as url, TemporaryDirectory() as tmp:
        store = open_store(url)
        service = LedgerService(store)
        _ingest(service, history, 0)
        entries = result["entries"] = _entries(store)
        for mode in ("after", "before"):  # the same ledger, back to back
            result[f"full_{mode}"] = _child(mode, url, tmp)
        key = load_private_key(keygen()[0])
        checkpoint = sign_checkpoint(store, key, 1_900_000_000_000)
        (Path(tmp) / "checkpoint.json").write_text(checkpoint.to_json())
        result["full_keeping_state"] = _child("keep", url, tmp)
        _ingest(service, today, len(history))
        result["day_entries"] = _entries(store) - entries
        result["daily"] = _child("daily", url, tmp)
        store.dispose()
    for name in ("full_after", "full_before", "full_keeping_state"):
        result[name]["entries_per_min"] = round(entries / result[name]["seconds"] * 60)
    daily = result["daily"]
    daily["entries_per_min"] = round(result["day_entries"] / daily["seconds"] * 60)
    daily["seconds_vs_full"] = round(daily["seconds"] / result["full_after"]["seconds"], 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postings", type=int, default=200_000)
    parser.add_argument("--day", type=float, default=0.01, help="the day's share of the orders")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--state", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(check(args.child, os.environ[URL_ENV], args.state, args.checkpoint)))
        return
    pg_url = args.pg_url or default_pg_url()
    print(json.dumps(run(pg_url, args.postings, args.day, args.seed), indent=2))


if __name__ == "__main__":
    main()
