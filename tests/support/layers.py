"""The layers of docs/architecture.md, lowest first: a module may import its own layer and
those below it, never one above (tests/unit/test_architecture.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import ROOT, imports_of

PACKAGES = ("ledger", "consumers", "projectors", "schemas")

# (layer, module prefixes): the longest matching prefix decides a module's layer
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("domain", ("ledger.domain",)),
    (
        "contracts",  # the wire and file forms, chain arithmetic, settings: pure values
        (
            "schemas",
            "ledger.chain",
            "ledger.offsets",
            "ledger.dead_letters",
            "ledger.jsonform",
            "ledger.payload",
            "ledger.kafka.topics",
            "ledger.config",
            "ledger.logs",
            "ledger.runtime",
            "ledger.compiled",
            "ledger.files",
            "ledger",  # the package itself: it only picks the domain's build (compiled.py)
        ),
    ),
    ("store", ("ledger.store",)),
    ("application", ("ledger.service", "projectors")),
    ("read", ("ledger.read",)),
    (
        "adapters",  # Kafka, files, exports, the simulator
        (
            "consumers",
            "ledger.kafka",
            "ledger.export",
            "ledger.ingest_file",
            "ledger.simulate",
            "ledger.statement_files",
            "ledger.api.sink",  # where the API's commands go: the service, or Kafka
            "ledger.submission",  # one event submitted once (idempotency), to a sink
            "ledger.redrives",  # a dead letter's correction, built and checked
        ),
    ),
    ("composition", ("ledger.bootstrap",)),
    (
        "entry points",  # and the tooling that generates docs and measures the codec
        (
            "ledger.api",
            "ledger.web",
            "ledger.commands",
            "ledger.cli",
            "ledger.docgen",
            "schemas.bench",
        ),
    ),
]


def modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (migrations excluded: Alembic's)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for n, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), n
    if rank < 0:
        raise LookupError(f"{module} is in no layer: add it to tests/support/layers.py")
    return rank


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports (a parent package it lives in excluded)."""
    found = modules()
    graph: dict[str, set[str]] = {}
    for module, path in found.items():
        targets = set()
        for name in imports_of(path):
            while name and name not in found:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                targets.add(name)
        graph[module] = targets
    return graph
