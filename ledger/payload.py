"""The stored form of an event: canonical JSON (sorted keys, compact, ASCII with escapes
so any string, even a lone surrogate, stores safely; times as int ms).

Deterministic, so the same event always stores as the same text; exact, so loading it
gives back an equal event. The human JSON form (ISO times) lives in ledger/jsonform.py.
"""

from __future__ import annotations

import json

from ledger.domain.events import (
    Event,
    event_from_record,
    event_to_record,
    event_to_record_value,
)
from ledger.domain.shapes import field_names

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # built once: hot path


def dump_event(event: Event) -> str:
    """The stored text of ``event``: equal to ``dump_event_reference`` (a test holds them
    equal), assembled field by field because it runs for every event ingested and
    every event verify replays."""
    parts = []
    for name, prefix in _layout(type(event)):
        value = event.TYPE if name == "type" else getattr(event, name)
        kind = type(value)
        if kind is str:
            parts.append(prefix + _str(value))
        elif kind is int:
            parts.append(prefix + int.__repr__(value))
        elif value is None:
            parts.append(prefix + "null")
        else:  # lists of lines, booleans: JSON encodes a part as it would the whole
            parts.append(prefix + _ENCODER.encode(event_to_record_value(value)))
    return "{" + ",".join(parts) + "}"


def dump_event_reference(event: Event) -> str:
    """The definition: the event's record with its type, as sorted compact ASCII JSON."""
    record = event_to_record(event)
    record["type"] = event.TYPE
    return _ENCODER.encode(record)


_str = json.encoder.encode_basestring_ascii
_LAYOUTS: dict[type, tuple[tuple[str, str], ...]] = {}


def _layout(cls: type) -> tuple[tuple[str, str], ...]:
    """(field, '"field":') in sorted key order, "type" included; built once per class."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        names = sorted({*field_names(cls), "type"})
        layout = _LAYOUTS[cls] = tuple((n, _str(n) + ":") for n in names)
    return layout


def load_event(text: str) -> Event:
    record = json.loads(text)
    return event_from_record(record.pop("type"), record)
