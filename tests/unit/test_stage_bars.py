"""``stage_bars``: one progress bar per stage on a terminal's stderr, nothing otherwise."""

from __future__ import annotations

import io
import sys

import pytest

from ledger.commands.common import stage_bars


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run() -> None:
    with stage_bars() as progress:
        for stage in ("journal", "event log"):
            for done in (1, 2, 3):
                progress(stage, done, 3)


def test_a_terminal_gets_a_bar_per_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    _run()
    text = err.getvalue()
    assert text.index("journal") < text.index("event log")
    assert text.count("3/3") >= 2


def test_a_pipe_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    _run()
    assert err.getvalue() == ""
