"""The code stays ruff- and mypy-clean (ARCHITECTURE.md): a lint failure fails the suite."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checks_stay_as_wide() -> None:
    """mypy is strict over the whole package and the test support code, and ruff's wider
    rule set stays on: a narrowed setting would let the lint tests above pass on less."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mypy = config["tool"]["mypy"]
    assert mypy["strict"] is True
    assert set(mypy["files"]) >= {"ledger", "consumers", "schemas", "projectors", "tests/support"}
    assert not any(o.get("ignore_errors") for o in mypy.get("overrides", []))
    ruff = config["tool"]["ruff"]["lint"]
    assert set(ruff["select"]) >= {"E", "F", "I", "B", "UP", "BLE", "SIM", "C4", "ARG", "T20"}
