"""Running the ``ledger`` CLI in tests: in process (click's CliRunner) or as a real
process, optionally without root's power over file permissions or with a file size limit
(so a write fails for real, half way, without any monkeypatching)."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from ledger.cli import main

LEDGER = Path(sys.executable).parent / "ledger"
PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root ignore file modes
# and the sticky bit (linux/capability.h)
FILE_CAPABILITIES = (1, 2, 3)


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: Result, *words: str) -> str:
    """Assert ``result`` is a one-line ``Error: …`` with exit 1 containing ``words``."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def run_process(
    *args: object,
    unprivileged: bool = False,
    max_file_bytes: int | None = None,
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """``ledger ARGS`` as a child process. ``unprivileged``: file modes and the sticky bit
    apply to it even when the tests run as root (root keeps its uid but loses the
    capabilities that override them). ``max_file_bytes``: RLIMIT_FSIZE, so a write past
    that size fails with EFBIG (Python ignores SIGXFSZ)."""
    steps: list[Callable[[], None]] = []
    if unprivileged and os.geteuid() == 0:
        steps.append(_drop_file_capabilities)
    if max_file_bytes is not None:
        steps.append(
            lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
        )

    def prepare() -> None:
        for step in steps:
            step()

    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run(
        [str(LEDGER), *map(str, args)],
        text=True,
        timeout=timeout,
        preexec_fn=prepare if steps else None,
        check=False,
        **kwargs,
    )


def _drop_file_capabilities() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in FILE_CAPABILITIES:
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
