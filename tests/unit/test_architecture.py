"""The import contract of docs/architecture.md: dependencies point inward."""

from __future__ import annotations

from tests.support.imports import ROOT, imports_of
from tests.support.layers import LAYERS, import_graph, layer_of

IO_LIBRARIES = {
    "kafka",
    "sqlalchemy",
    "psycopg2",
    "fastapi",
    "uvicorn",
    "alembic",
    "prometheus_client",
    "structlog",
    "click",
    "fastavro",
    "requests",
    "httpx",
}


def test_the_domain_imports_no_io_and_nothing_of_ours_outside_it() -> None:
    files = sorted((ROOT / "ledger" / "domain").glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in IO_LIBRARIES, f"{path.name} imports {name}"
            assert top not in {"time", "datetime", "socket", "os"}, (
                f"{path.name}: {name} (clock/IO)"
            )
            if top in {"ledger", "schemas", "consumers", "projectors"}:
                assert name.startswith("ledger.domain"), f"{path.name} imports {name}"


def test_adapters_do_not_reach_into_each_other() -> None:
    for package, forbidden in (
        ("consumers", {"ledger.commands", "ledger.api"}),
        ("ledger/store", {"consumers", "ledger.commands", "ledger.service"}),
    ):
        for path in sorted((ROOT / package).glob("*.py")):
            for name in imports_of(path):
                assert not any(name == f or name.startswith(f + ".") for f in forbidden), (
                    f"{package}/{path.name} imports {name}"
                )


TABLES = {"ledger.store.tables", "ledger.store.view_tables"}
# who may write SQL on the tables: the store, the read side, and the views' projectors
SQL_HOMES = ("ledger/store/", "ledger/read/", "projectors/")


def test_only_the_store_the_read_side_and_the_projectors_touch_the_tables() -> None:
    checked = 0
    for package in ("ledger", "consumers", "projectors", "schemas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where.startswith(SQL_HOMES):
                continue
            checked += 1
            touched = imports_of(path) & TABLES
            assert not touched, f"{where} imports {sorted(touched)}: read through ledger/read"
    assert checked >= 60


def test_no_module_imports_a_layer_above_its_own() -> None:
    graph = import_graph()
    assert len(graph) >= 120
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components of the import graph: none larger than one."""
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_domain_knows_nothing_of_how_amounts_are_shown() -> None:
    """Babel and the ISO 4217 table serve the read side (ledger/read/money.py), never the
    rules: the domain keeps integer minor units only."""
    for path in sorted((ROOT / "ledger" / "domain").glob("*.py")):
        for name in imports_of(path):
            assert name.split(".")[0] not in {"babel", "iso4217"}, f"{path.name} imports {name}"
