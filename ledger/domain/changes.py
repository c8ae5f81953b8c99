"""What changed between two JSON values, field by field, as JSON-pointer paths (RFC 6901).

Pure: shows a redrive's correction of a dead letter (``before``: the original's JSON form,
``after``: the corrected event's). Each change is ``{"op", "path", "before", "after"}``;
``op`` says whether the path was added, removed or replaced, so a ``null`` value is never
mistaken for an absent one. Objects are compared key by key, arrays index by index (a
longer or shorter array adds or removes at its end), anything else as a whole.
``apply_changes(before, changes)`` gives ``after`` back (tests/unit/test_changes.py).
"""

from __future__ import annotations

import copy
from typing import Any

Change = dict[str, Any]


def pointer(parts: list[str | int]) -> str:
    """The JSON pointer of ``parts`` ("" is the whole value)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def parse_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"not a JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def diff(before: Any, after: Any) -> list[Change]:
    """The changes that turn ``before`` into ``after`` (empty when they are equal)."""
    out: list[Change] = []
    _diff(before, after, [], out)
    return out


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python, not in JSON: compare types as well
    return type(a) is type(b) and a == b


def _diff(before: Any, after: Any, at: list[str | int], out: list[Change]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            if key in after:
                _diff(before[key], after[key], [*at, key], out)
            else:
                out.append(_change("remove", [*at, key], before[key], None))
        for key in after:
            if key not in before:
                out.append(_change("add", [*at, key], None, after[key]))
    elif isinstance(before, list) and isinstance(after, list):
        common = min(len(before), len(after))
        for i in range(common):
            _diff(before[i], after[i], [*at, i], out)
        # removals from the end first, so applying them in order keeps indexes valid
        for i in range(len(before) - 1, common - 1, -1):
            out.append(_change("remove", [*at, i], before[i], None))
        for i in range(common, len(after)):
            out.append(_change("add", [*at, i], None, after[i]))
    elif not _deep_same(before, after):
        out.append(_change("replace", at, before, after))


def _deep_same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(_deep_same(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_deep_same, a, b))
    return _same(a, b)


def _change(op: str, at: list[str | int], before: Any, after: Any) -> Change:
    return {"op": op, "path": pointer(at), "before": before, "after": after}


def apply_changes(value: Any, changes: list[Change]) -> Any:
    """``value`` with ``changes`` applied in order (a copy; ``value`` is left as it is)."""
    root = {"": copy.deepcopy(value)}
    for change in changes:
        parts = parse_pointer(change["path"])
        parent: Any = root
        key: Any = ""
        for part in parts:
            parent = parent[key]
            key = int(part) if isinstance(parent, list) else part
        if change["op"] == "remove":
            del parent[key]
        elif change["op"] == "add" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(change["after"]))
        else:
            parent[key] = copy.deepcopy(change["after"])
    return root[""]
