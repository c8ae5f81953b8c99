"""deploy/test.sh starts no server for a run of unit tests only (they need none)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_unit_only_run_starts_no_server(tmp_path: Path) -> None:
    # an empty cache: starting Kafka or PostgreSQL from it would leave their directories
    env = {**os.environ, "LEDGER_CACHE_DIR": str(tmp_path)}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        ["bash", "deploy/test.sh", "tests/unit/test_money.py", "-q", "-p", "no:randomly"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Kafka and PostgreSQL are not started" in result.stdout
    assert " passed" in result.stdout
    started = {p.name for p in tmp_path.iterdir()} & {"kafka", "postgres", "test-runs"}
    assert not started, f"servers were set up: {started}"
