"""Downloads (docs/views.md, "Downloads"): on one simulated ledger, back to back,

- payout states of every order level: one walk per sharer (``FifoStates``, what the
  payouts-by-level download uses) against ``level_state`` per level (what the sharer and
  order pages use), levels per second and the ratio;
- the payouts-by-level CSV and XLSX written streamed (a keyset page at a time) against the
  same rows loaded first: rows per second and the peak of Python's allocations
  (tracemalloc), which for the streamed file is the page, not the table.

    .venv/bin/python bench/downloads.py --orders 20000 [--db URL] [--json OUT]

SQLite in a temporary folder unless --db names a fresh database.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from bench.support import (
    LedgerService,
    Received,
    catalog,
    downloads,
    generate,
    open_store,
    order_reads,
    runner,
    spreadsheets,
    view_tables,
)


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def peak_bytes(run: Callable[[], Any]) -> tuple[int, Any]:
    """The peak of Python's allocations while ``run`` runs, and its result."""
    tracemalloc.start()
    result = run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, result


def drain(chunks: Iterator[bytes]) -> int:
    return sum(len(c) for c in chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--sharers", type=int, default=400)
    parser.add_argument("--db", help="a fresh database URL (default: SQLite in a temp dir)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='bench-dl-')}/ledger.sqlite"
    store = open_store(url)
    events = generate(7, orders=args.orders, sharers=args.sharers, buyers=args.orders // 4).all()
    build, _ = timed(
        lambda: LedgerService(store).ingest(
            [Received(e, f"b:{n}", "b") for n, e in enumerate(events)]
        )
    )
    runner.catch_up(store)
    figures: dict[str, Any] = {"orders": args.orders, "events": len(events), "build_s": build}
    with store.read() as conn:
        table = view_tables.view_order_levels  # every row readers see, as level_state takes it
        rows = conn.execute(select(table).where(catalog.shown(table))).all()
        figures["levels"] = len(rows)

        old, old_states = timed(lambda: [order_reads.level_state(conn, r) for r in rows])
        new, new_rows = timed(lambda: list(downloads.payouts_by_level(conn).rows))
        new_states = {(r[0], r[2]): r[-1] for r in new_rows}
        assert new_states == {
            (r.order_id, r.sharer_id): s for r, s in zip(rows, old_states, strict=True)
        }, "the download's states differ from level_state"
        figures["states_level_state_per_s"] = len(rows) / old
        figures["states_fifo_walk_per_s"] = len(rows) / new
        figures["states_speedup"] = old / new

        for fmt in ("csv", "xlsx"):

            def write(rows_of: Iterator[tuple[Any, ...]], fmt: str = fmt) -> int:
                columns = downloads.columns_of(downloads.OrderLevel)
                if fmt == "csv":
                    return drain(spreadsheets.write_csv(columns, rows_of))
                return drain(spreadsheets.write_xlsx("levels", columns, rows_of))

            def streamed() -> int:
                return write(downloads.payouts_by_level(conn).rows)

            def loaded_first() -> int:
                return write(iter(list(downloads.payouts_by_level(conn).rows)))

            for name, run in (("streamed", streamed), ("loaded_first", loaded_first)):
                seconds, _ = timed(run)  # timed without tracemalloc, which slows Python
                peak, _ = peak_bytes(run)
                figures[f"{fmt}_{name}_rows_per_s"] = len(rows) / seconds
                figures[f"{fmt}_{name}_peak_kib"] = peak // 1024
    store.dispose()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
