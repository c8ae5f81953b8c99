"""What compiling the rules buys: the pure domain (``ledger/domain``) compiled with mypyc
(the optional build, ledger/compiled.py) against the same modules interpreted, on the
realistic mix, in memory (no Kafka, no database): ``processor.process`` over every event
on an empty state, best of three.

    .venv/bin/python bench/compiled_rules.py [--orders 30000]

Needs a C compiler and the Python headers (mypyc ships with mypy, a test dependency).
The build is made in a temporary directory (``ledger.compiled.build``, what
deploy/build-compiled.sh runs) and used through ``LEDGER_COMPILED_DIR``; the venv's own
build, if any, is not touched. Both runs must give the same outcomes (a digest of every
result), or the figure is refused. Writes bench/results/compiled-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO))

from ledger import compiled  # noqa: E402

# Run in a fresh interpreter, compiled or not as its environment says.
MEASURE = """
import gc, hashlib, json, sys, time
import ledger.domain.engine as engine
from ledger.domain.processor import Incoming, process
from ledger.domain.state import WorkingState
from ledger.simulate import generate
events = generate(seed=2026, sharers=500, buyers=20_000, orders=int(sys.argv[1])).all()
incoming = [Incoming(e, i + 1, f"bench@{i}", "bench") for i, e in enumerate(events)]
gc.freeze()
best = None
for _ in range(3):
    started = time.perf_counter()
    results = process(incoming, WorkingState())
    seconds = time.perf_counter() - started
    best = seconds if best is None else min(best, seconds)
digest = hashlib.sha256()
for r in results:
    o = r.outcome
    digest.update(repr((r.incoming.event.event_id, type(o).__name__,
                        getattr(o, "entries", None), getattr(o, "reason", None))).encode())
print(json.dumps({"engine": engine.__file__, "events": len(events), "seconds": best,
                  "digest": digest.hexdigest()}))
"""


def measure(env: dict[str, str], orders: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(orders)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=30_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-mypyc-") as tmp:
        started = time.perf_counter()
        build = compiled.build(Path(tmp) / "build")
        build_s = time.perf_counter() - started
        interpreted = measure({"LEDGER_COMPILED": "off"}, args.orders)
        as_compiled = measure(
            {"LEDGER_COMPILED": "on", "LEDGER_COMPILED_DIR": str(build)}, args.orders
        )
    if not str(as_compiled["engine"]).endswith(".so"):
        raise SystemExit(f"the compiled run imported {as_compiled['engine']}, not an extension")
    if as_compiled["digest"] != interpreted["digest"]:
        raise SystemExit("compiled and interpreted rules gave different outcomes")
    events = int(interpreted["events"])  # type: ignore[call-overload]
    per_event = {
        name: float(run["seconds"]) / events * 1e6  # type: ignore[arg-type]
        for name, run in (("interpreted", interpreted), ("compiled", as_compiled))
    }
    result = {
        "benchmark": "bench/compiled_rules.py",
        "time": time.strftime("%Y%m%d-%H%M%S"),
        "events": events,
        "build_seconds": round(build_s, 1),
        "us_per_event": {k: round(v, 1) for k, v in per_event.items()},
        "speedup": round(per_event["interpreted"] / per_event["compiled"], 2),
        "same_outcomes": True,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"compiled-{result['time']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
