"""The stored form of an event: canonical JSON (sorted keys, compact, ASCII with escapes
so any string, even a lone surrogate, stores safely; times as int ms).

Deterministic, so the same event always stores as the same text; exact, so loading it
gives back an equal event. The human JSON form (ISO times) lives in ledger/jsonform.py.
"""

from __future__ import annotations

import json

from ledger.domain.events import Event, event_from_record, event_to_record

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # built once: hot path


def dump_event(event: Event) -> str:
    record = event_to_record(event)
    record["type"] = event.TYPE
    return _ENCODER.encode(record)


def load_event(text: str) -> Event:
    record = json.loads(text)
    return event_from_record(record.pop("type"), record)
