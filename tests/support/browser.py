"""Debian's Chromium for the browser tests (deploy/chromium.sh installs it when missing)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def chromium_path() -> str:
    found = subprocess.run(
        ["bash", str(REPO / "deploy" / "chromium.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    return found.stdout.strip().splitlines()[-1]
