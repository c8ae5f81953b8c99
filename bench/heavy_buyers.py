"""Attribution's cost against a buyer's history (issue 22 §1): the same orders into two
PostgreSQL ledgers, one whose buyers have 10 clicks in the window and one whose buyers
have 10,000. Both ledgers hold the same number of clicks (many light buyers, few heavy
ones), so only the clicks per buyer differ. Target: cost ratio (heavy / light) <= 1.2.

    .venv/bin/python bench/heavy_buyers.py [--orders 4000] [--heavy-clicks 10000]
                                           [--before main]

Built in-process through ``LedgerService.ingest`` (no Kafka): the plans, a 1,000-sharer
forest and the clicks first (not timed), then the orders without a named click (so each
falls back to its buyer's latest click), in batches of ``--batch``, a batch into each
ledger in turn so that both see the same load of the shared machine. ``--before REV``
first measures the ledger package of git revision REV the same way (in a subprocess, its
own migrations), for a before/after in one run. Writes bench/results/heavy-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and "--tree" in sys.argv:  # measure another checkout's ledger
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import ledger  # noqa: E402
from bench.support import (  # noqa: E402
    PRODUCER,
    RESULTS,
    START,
    ClickRecorded,
    Event,
    LedgerService,
    OrderLine,
    OrderPlaced,
    Received,
    default_pg_url,
    fresh_database,
    open_store,
    plans,
    portable,
    tune_gc_for_throughput,
)
from bench.workloads import DAY_MS, forest, sharer_ids  # noqa: E402

TOTAL_CLICKS = 100_000  # in each ledger: light and heavy differ only in clicks per buyer
LIGHT_CLICKS = 10
SHARERS = 1_000
TARGET = 1.2


def clicks(rng: random.Random, buyers: int, per_buyer: int) -> list[Event]:
    """``per_buyer`` clicks of each buyer, at random times of days 10 to 14 (inside plan
    spring-2026's 15-day window at the orders' time), out of time order."""
    ids = sharer_ids(SHARERS)
    out: list[Event] = []
    for n in range(buyers * per_buyer):
        out.append(
            ClickRecorded(
                f"ev-clk-{n:07d}",
                START + 10 * DAY_MS + rng.randrange(4 * DAY_MS),
                PRODUCER,
                click_id=f"clk-{n:07d}",
                sharer_id=rng.choice(ids),
                buyer_id=f"b{n % buyers:06d}",
                product_id="sku-1",
            )
        )
    return out


def orders(rng: random.Random, buyers: int, count: int) -> list[Event]:
    """``count`` one-line orders of random buyers on day 14, naming no click."""
    return [
        OrderPlaced(
            f"ev-ord-{n:07d}",
            START + 14 * DAY_MS + 1_000 * n,
            PRODUCER,
            order_id=f"ord-{n:07d}",
            buyer_id=f"b{rng.randrange(buyers):06d}",
            merchant_id="m01",
            currency="CNY",
            lines=(OrderLine("l0", "sku-1", 1, rng.randrange(500, 30_000)),),
        )
        for n in range(count)
    ]


def _ingest(service: LedgerService, events: list[Event], batch: int) -> None:
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        service.ingest([Received(e, f"bench@{start + i}", "c0") for i, e in enumerate(chunk)])


def run(
    pg_url: str,
    order_count: int,
    heavy_clicks: int = 10_000,
    batch: int = 1_000,
    seed: int = 2026,
    total_clicks: int = TOTAL_CLICKS,
) -> dict[str, Any]:
    """Orders/s into a ledger of light buyers and into one of heavy buyers, and the ratio."""
    tune_gc_for_throughput()  # as `ledger ingest` does
    shapes = {
        "light": (total_clicks // LIGHT_CLICKS, LIGHT_CLICKS),
        "heavy": (max(1, total_clicks // heavy_clicks), heavy_clicks),
    }
    with (
        fresh_database(pg_url, "bench_light_", ledger=True) as light_url,
        fresh_database(pg_url, "bench_heavy_", ledger=True) as heavy_url,
    ):
        services, placed = {}, {}
        for (name, (buyers, per_buyer)), url in zip(
            shapes.items(), (light_url, heavy_url), strict=True
        ):
            rng = random.Random(seed)
            services[name] = LedgerService(open_store(url))
            setup = [*plans(), *forest(rng, SHARERS), *clicks(rng, buyers, per_buyer)]
            _ingest(services[name], setup, 2_000)
            placed[name] = orders(rng, buyers, order_count)
        seconds = dict.fromkeys(shapes, 0.0)
        for start in range(0, order_count, batch):
            for name, service in services.items():
                began = time.perf_counter()
                _ingest(service, placed[name][start : start + batch], batch)
                seconds[name] += time.perf_counter() - began
        for service in services.values():
            service.store.dispose()
    rates = {name: order_count / s for name, s in seconds.items()}
    return {
        "ledger_package": portable(str(Path(ledger.__file__).parent)),
        "orders": order_count,
        "batch": batch,
        "clicks_per_ledger": total_clicks,
        "shapes": {name: {"buyers": b, "clicks_per_buyer": c} for name, (b, c) in shapes.items()},
        "seconds": {name: round(s, 3) for name, s in seconds.items()},
        "orders_per_s": {name: round(r) for name, r in rates.items()},
        "cost_ratio": round(rates["light"] / rates["heavy"], 3),
        "target": f"<= {TARGET}",
    }


def before(rev: str, args: argparse.Namespace) -> dict[str, Any]:
    """The same measurement with the ledger package of git revision ``rev``."""
    with tempfile.TemporaryDirectory(prefix="heavy-before-") as tree:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "ledger"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        out = subprocess.run(
            [sys.executable, __file__, "--tree", tree, *_sizes(args), "--json-only"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return dict(json.loads(out), revision=rev)


def _sizes(args: argparse.Namespace) -> list[str]:
    return [
        f"--orders={args.orders}",
        f"--heavy-clicks={args.heavy_clicks}",
        f"--batch={args.batch}",
        f"--total-clicks={args.total_clicks}",
        f"--seed={args.seed}",
        f"--pg-url={args.pg_url}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=4_000)
    parser.add_argument("--heavy-clicks", type=int, default=10_000)
    parser.add_argument("--total-clicks", type=int, default=TOTAL_CLICKS, help="per ledger")
    parser.add_argument("--batch", type=int, default=1_000, help="orders per ingest batch")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--before", metavar="REV", help="also measure this git revision first")
    parser.add_argument("--pg-url", help="default: LEDGER_BENCH_PG_URL, else the deploy cluster's")
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.pg_url = args.pg_url or default_pg_url()
    result: dict[str, Any] = {"benchmark": "bench/heavy_buyers.py"}
    if args.before:
        result["before"] = before(args.before, args)
    result["after"] = run(
        args.pg_url, args.orders, args.heavy_clicks, args.batch, args.seed, args.total_clicks
    )
    if args.json_only:
        print(json.dumps(result["after"]))
        return
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"heavy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for when in ("before", "after"):
        if when in result:
            r = result[when]
            print(
                f"{when}: light {r['orders_per_s']['light']} orders/s, "
                f"heavy {r['orders_per_s']['heavy']} orders/s, "
                f"cost ratio {r['cost_ratio']} (target {r['target']})"
            )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
