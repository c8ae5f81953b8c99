"""What compiling the rules would buy: the pure domain (``ledger/domain``) compiled with
mypyc against the same modules interpreted, on the realistic mix, in memory (no Kafka, no
database): ``processor.process`` over every event on an empty state, best of three.

    .venv/bin/python bench/compiled_rules.py [--orders 30000]

Needs a C compiler and the Python headers (mypyc ships with mypy, a test dependency).
The compiled copy is built in a temporary directory; the repository is not touched.
Two modules stay interpreted: ``events`` (mypyc rejects a ClassVar without a default
in a dataclass) and ``reasons`` (a StrEnum). One edit is made to the copy: ``EventRules``
loses its type parameter (mypyc cannot build a generic dataclass), which changes no
behaviour. Both runs must give the same outcomes (a digest of every result), or the
figure is refused. Writes bench/results/compiled-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
INTERPRETED_ONLY = {"__init__.py", "events.py", "reasons.py"}
GENERIC = "class EventRules(Generic[E]):"

# Run in a fresh interpreter with the tree to measure first on sys.path.
MEASURE = """
import gc, hashlib, json, sys, time
sys.path.insert(0, sys.argv[1])
import ledger.domain.engine as engine
from ledger.domain.processor import Incoming, process
from ledger.domain.state import WorkingState
from ledger.simulate import generate
events = generate(seed=2026, sharers=500, buyers=20_000, orders=int(sys.argv[2])).all()
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


def build(into: Path) -> None:
    shutil.copytree(REPO / "ledger", into / "ledger", ignore=shutil.ignore_patterns("*.pyc"))
    engine = into / "ledger" / "domain" / "engine.py"
    text = engine.read_text()
    if GENERIC not in text:
        raise SystemExit(f"{engine}: {GENERIC!r} not found; update bench/compiled_rules.py")
    text = text.replace(GENERIC, "class EventRules:")
    text = text.replace("Callable[[E,", "Callable[[Any,")
    engine.write_text(text.replace("EventRules[Any]", "EventRules"))
    modules = sorted(
        str(p.relative_to(into))
        for p in (into / "ledger" / "domain").glob("*.py")
        if p.name not in INTERPRETED_ONLY
    )
    mypyc = Path(sys.executable).with_name("mypyc")
    done = subprocess.run(
        [str(mypyc), *modules], cwd=into, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"mypyc failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def measure(tree: Path, orders: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tree), str(orders)],
        cwd=tree,
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
        compiled_tree = Path(tmp)
        started = time.perf_counter()
        build(compiled_tree)
        build_s = time.perf_counter() - started
        interpreted = measure(REPO, args.orders)
        compiled = measure(compiled_tree, args.orders)
    if not str(compiled["engine"]).endswith(".so"):
        raise SystemExit(f"the compiled run imported {compiled['engine']}, not an extension")
    if compiled["digest"] != interpreted["digest"]:
        raise SystemExit("compiled and interpreted rules gave different outcomes")
    events = int(interpreted["events"])  # type: ignore[call-overload]
    per_event = {
        name: float(run["seconds"]) / events * 1e6  # type: ignore[arg-type]
        for name, run in (("interpreted", interpreted), ("compiled", compiled))
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
