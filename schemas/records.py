"""Fast record → event conversion for records the Avro reader produced.

``ledger.domain.events.event_from_record`` accepts any dict and checks it field by field;
on the decode hot path it costs as much as the Avro read itself. A record resolved to a
reader schema already has every field with the schema's type, so a converter compiled once
per type can build the event directly. It is only used when the reader schema has every
field of the dataclass; otherwise the codec falls back to ``event_from_record``. The tests
check both give equal events.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from ledger.domain.events import EVENT_TYPES, Event, event_from_record
from ledger.domain.shapes import field_names, record_layout

Converter = Callable[[dict[str, Any]], Event]


def _schema_field_names(schema: dict[str, Any]) -> set[str]:
    return {f["name"] for f in schema["fields"]}


def _items_schema(schema: dict[str, Any], name: str) -> Any:
    for f in schema["fields"]:
        if f["name"] == name:
            t = f["type"]
            return t.get("items") if isinstance(t, dict) else None
    return None


def _getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    if len(names) == 1:  # itemgetter of one key returns the value, not a 1-tuple
        only = names[0]
        return lambda d: (d[only],)
    return itemgetter(*names)


def compile_converter(event_type: str, reader_schema: dict[str, Any]) -> Converter:
    """A function turning a record read with ``reader_schema`` into the typed event."""
    cls = EVENT_TYPES.get(event_type)

    def fallback(record: dict[str, Any]) -> Event:
        return event_from_record(event_type, record)

    if cls is None:
        return fallback
    layout = record_layout(cls)
    names = [name for name, _, _, _ in layout]
    if not set(names) <= _schema_field_names(reader_schema):
        return fallback
    tuple_fields: list[str] = []
    nested: list[tuple[str, Any, list[str]]] = []
    for name, _, item_type, item_cls in layout:
        if item_cls is not None:
            item_names = list(field_names(item_cls))
            items = _items_schema(reader_schema, name)
            if not isinstance(items, dict) or not set(item_names) <= _schema_field_names(items):
                return fallback
            nested.append((name, item_cls, item_names))
        elif item_type is not None:
            tuple_fields.append(name)

    # Positional, from itemgetter tuples: about twice as fast as keyword arguments for these
    # frozen, slotted dataclasses. An event class takes its own fields by keyword only (so
    # that a field left out is a type error), so the event is made as its generated
    # __init__ makes it, one slot at a time, but from positions; its items (order lines, …)
    # through their own __init__.
    set_slots = [getattr(cls, name).__set__ for name in names]
    get_values = _getter(names)
    tuple_at = [names.index(n) for n in tuple_fields]
    nested_at = [
        (names.index(n), item_cls, _getter(item_names)) for n, item_cls, item_names in nested
    ]
    new = object.__new__

    def convert(record: dict[str, Any]) -> Event:
        values = list(get_values(record))
        for i in tuple_at:
            values[i] = tuple(values[i])
        for i, item_cls, get_item in nested_at:
            values[i] = tuple([item_cls(*get_item(item)) for item in values[i]])
        event = new(cls)
        for set_slot, value in zip(set_slots, values, strict=True):
            set_slot(event, value)
        return event

    return convert
