"""An event type's shape, read off its dataclass in one place: each field's name, whether
it may be absent, and the item type of a list field (a dataclass for records such as
order lines).

Every codec builds from this rather than reading the dataclass again: the record form
(``events.event_from_record`` / ``event_to_record``), the stored form (ledger/payload.py)
and the Avro reader's converter (schemas/records.py). The other statement of the shape is
the ``.avsc``; tests/unit/test_event_shapes.py checks the two agree field by field (name,
order, type, optionality, nested records).

Built once per class and kept: these run for every event decoded, stored or replayed.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, get_args, get_origin, get_type_hints

# (field, optional, tuple item type or None, item dataclass or None)
FieldLayout = tuple[str, bool, Any, Any]

_LAYOUTS: dict[type, tuple[FieldLayout, ...]] = {}
_NAMES: dict[type, tuple[str, ...]] = {}


def record_layout(cls: type) -> tuple[FieldLayout, ...]:
    """Per field of ``cls``, in order: its name; whether it is optional (its default is
    None: it may be absent, and Avro has it as a union with null); the item type of a
    ``tuple[X, ...]`` field; and that item type again when it is a dataclass (built from
    its dict form)."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        hints = get_type_hints(cls)
        rows = []
        for f in fields(cls):
            hint = hints[f.name]
            item = get_args(hint)[0] if get_origin(hint) is tuple else None
            nested = item if item is not None and is_dataclass(item) else None
            rows.append((f.name, f.default is None, item, nested))
        layout = _LAYOUTS[cls] = tuple(rows)
    return layout


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a dataclass (an event or a record in one), in order."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names
