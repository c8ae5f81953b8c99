"""The field-level diff of a redrive (ledger/domain/changes.py): applying the changes to
before gives after, paths are JSON pointers, equal values have no changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.changes import apply_changes, diff, parse_pointer, pointer

keys = st.text(alphabet="ab/~0 1", min_size=0, max_size=3)
scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.text(alphabet="xy", max_size=2)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@given(before=json_values, after=json_values)
def test_applying_the_changes_to_before_gives_after(before, after) -> None:
    changes = diff(before, after)
    result = apply_changes(before, changes)
    assert result == after and _types(result) == _types(after)
    assert (changes == []) == (_types(before) == _types(after) and before == after)


@given(value=json_values)
def test_equal_values_have_no_changes(value) -> None:
    assert diff(value, value) == []


@given(parts=st.lists(keys, max_size=4))
def test_pointers_round_trip(parts) -> None:
    assert parse_pointer(pointer(parts)) == parts


def test_a_typo_in_a_line_is_one_change_at_its_path() -> None:
    before = {"type": "refund_issued", "lines": [{"sku": "A-1", "qty": 1}, {"sku": "A-1O"}]}
    after = {"type": "refund_issued", "lines": [{"sku": "A-1", "qty": 1}, {"sku": "A-10"}]}
    assert diff(before, after) == [
        {"op": "replace", "path": "/lines/1/sku", "before": "A-1O", "after": "A-10"}
    ]


def test_added_removed_and_null_are_told_apart() -> None:
    changes = diff({"a": None, "b": 1}, {"b": 1, "c": None})
    assert changes == [
        {"op": "remove", "path": "/a", "before": None, "after": None},
        {"op": "add", "path": "/c", "before": None, "after": None},
    ]
    assert diff([1, 2, 3], [1]) == [
        {"op": "remove", "path": "/2", "before": 3, "after": None},
        {"op": "remove", "path": "/1", "before": 2, "after": None},
    ]
    assert diff(1, True) == [{"op": "replace", "path": "", "before": 1, "after": True}]


def _types(value):
    """``value`` with each scalar's type beside it (True == 1 in Python, not in JSON)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return (type(value).__name__, value)
