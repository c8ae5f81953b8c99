"""The types catch the mistakes they are there for: each snippet below is wrong in one way
that used to pass unnoticed (a placeholder default, a plain ``str`` kind, an untyped rule
table), and mypy, configured as the suite runs it (tests/unit/test_lint.py), must say so
on that snippet's line and nowhere else."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
from ledger.domain.engine import rules_for, _order, _order_needs
from ledger.domain.entries import JournalEntry, sharer_account
from ledger.domain.events import ClickRecorded, OrderCompleted
from ledger.domain.model import Payout
from ledger.domain.refs import ref
"""

# one wrong line each -> what mypy must say about it
MISTAKES = {
    "ClickRecorded('e', 1, 'p', click_id='c', sharer_id='s', buyer_id='b')": (
        'Missing named argument "product_id"'
    ),
    "OrderCompleted('e', 1, 'p', 'O1', 'B1')": "Too many positional arguments",
    "sharer_account('S1', 'avaliable')": "incompatible type \"Literal['avaliable']\"",
    "JournalEntry(event_id='e', ordinal=0, kind='acrual', rule='r', occurred_at=1, postings=())": (
        "incompatible type \"Literal['acrual']\""
    ),
    "Payout('P1', 'S1', 'CNY', 100, 'settled')": "incompatible type \"Literal['settled']\"",
    "ref('orders', 'O1')": "incompatible type \"Literal['orders']\"",
    "rules_for(ClickRecorded, _order, _order_needs)": 'to "rules_for" has incompatible type',
}


def test_mypy_refuses_each_mistake(tmp_path: Path) -> None:
    lines = [*HEAD.splitlines(), *MISTAKES]
    snippet = tmp_path / "mistakes.py"
    snippet.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors: dict[int, str] = {}
    for line in result.stdout.splitlines():
        # by file name: mypy may replay a cached run's errors under that run's path
        found = re.match(r".*mistakes\.py:(\d+): error: (.*)", line)
        if found:
            errors[int(found[1])] = errors.get(int(found[1]), "") + found[2]
    head = len(HEAD.splitlines())
    assert set(errors) == set(range(head + 1, len(lines) + 1)), result.stdout
    for number, (code, expected) in enumerate(MISTAKES.items(), start=head + 1):
        assert expected in errors[number], (code, errors[number])
