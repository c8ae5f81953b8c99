"""Reason codes: one StrEnum (ledger/domain/reasons.py), equal to the table of
docs/rules.md, and no code emits a reason outside it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ledger.domain.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Reason codes (dead letters)"
# call -> position of its reason argument
REASON_ARGUMENT = {"Rejected": 0, "InvalidEvent": 0, "DecodeError": 0, "Undecodable": 1}


def documented_codes() -> set[str]:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) + len(SECTION) :].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def reason_arguments() -> list[tuple[str, int, ast.expr]]:
    """(file, line, argument) of every reason passed where a rejection or dead letter is
    made: ``Rejected``, ``InvalidEvent``, ``DecodeError``, ``Undecodable``."""
    found = []
    for package in ("ledger", "consumers", "schemas", "projectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name not in REASON_ARGUMENT:
                    continue
                position = REASON_ARGUMENT[name]
                args = node.args[position : position + 1]
                args += [k.value for k in node.keywords if k.arg == "reason"]
                found += [(str(path.relative_to(ROOT)), node.lineno, arg) for arg in args]
    return found


def test_the_enum_is_the_documented_table() -> None:
    assert documented_codes() == {r.value for r in Reason}


def test_members_equal_their_codes() -> None:
    assert all(r == r.value and str(r) == f"{r}" == r.value for r in Reason)
    assert all(repr(r) == repr(r.value) for r in Reason)  # logs show the plain code


def test_no_code_emits_a_reason_outside_the_enum() -> None:
    arguments = reason_arguments()
    assert len(arguments) > 40, "the scan no longer sees where reasons are made"
    outside = [
        (path, line, arg.value)
        for path, line, arg in arguments
        if isinstance(arg, ast.Constant) and arg.value not in set(Reason)
    ]
    assert not outside, outside
