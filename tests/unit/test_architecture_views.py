"""The import contract for the read side: projectors, the API and the dashboard depend on
ledger's core and on each other only downward (web → api → projectors), never on the CLI
or the Kafka consumer; projectors know nothing of HTTP."""

from __future__ import annotations

from tests.support.imports import ROOT, imports_of

RULES = {
    "projectors": {"ledger.api", "ledger.web", "ledger.commands", "consumers", "fastapi", "kafka"},
    "ledger/api": {"ledger.web", "ledger.commands", "consumers", "kafka"},
    "ledger/web": {"ledger.commands", "consumers", "kafka"},
}


def test_read_side_imports_point_inward() -> None:
    checked = 0
    for package, forbidden in RULES.items():
        for path in sorted((ROOT / package).glob("*.py")):
            checked += 1
            for name in imports_of(path):
                assert not any(name == f or name.startswith(f + ".") for f in forbidden), (
                    f"{package}/{path.name} imports {name}"
                )
    assert checked >= 12
