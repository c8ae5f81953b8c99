"""The import contract of docs/architecture.md: dependencies point inward."""

from __future__ import annotations

from tests.support.imports import ROOT, imports_of

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
