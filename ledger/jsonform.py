"""The JSON form of events (documented in docs/events.md).

An event's JSON form is an object with ``"type"`` (the event type), an optional
``"schema_version"`` and the event's fields under their Avro names. Times are ISO-8601 UTC
strings with milliseconds (``"2026-03-01T08:00:00.000Z"``); integer milliseconds are also
accepted on input. Input is validated against the Avro schema of the type, so whatever
this module accepts the codec can encode, and whatever the codec decodes has a JSON form.

Errors are ``InvalidEvent`` with ``reason``:
  malformed_json      not UTF-8, not JSON, not an object, duplicate keys, NaN/Infinity
  unknown_event_type  ``type`` names no known event type
  invalid_field       a missing required field, an unknown field, or a value of the wrong
                      JSON type (a float or bool where an integer is required, a string
                      amount, ...): floats never carry money or counts
  invalid_value       the right JSON type but not a usable value: an integer out of range,
                      an unparseable or sub-millisecond time, an unknown schema_version
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ledger.domain.events import Event, InvalidEvent, event_from_record, event_to_record
from schemas.registry import Registry, SchemaInfo
from schemas.times import iso_to_ms, ms_to_iso
from schemas.validate import Check, Problem, compile_record_check

_RESERVED = ("type", "schema_version")


# -- the codec --------------------------------------------------------------------------


class JsonForm:
    """JSON form of the events of one schema registry (``Registry.default()`` if omitted)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry.default()
        self._checks: dict[tuple[str, int], Check] = {}
        for info in self.registry:
            self._checks[(info.event_type, info.version)] = compile_record_check(
                info.schema, iso_times=True, allowed=_RESERVED
            )

    def _schema_for(self, event_type: str, version: Any) -> SchemaInfo:
        latest = self.registry.reader(event_type)
        if latest is None:
            raise InvalidEvent("unknown_event_type", f"unknown event type {event_type!r}")
        if version is None:
            return latest
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidEvent("invalid_field", f"{event_type}.schema_version: expected an integer")
        info = self.registry.get(event_type, version)
        if info is None:
            raise InvalidEvent("invalid_value", f"{event_type}: unknown schema_version {version}")
        return info

    def event_from_json(self, obj: Any) -> Event:
        """Validate a JSON object and build its event; raises ``InvalidEvent``."""
        if not isinstance(obj, dict):
            raise InvalidEvent(
                "malformed_json", f"expected a JSON object, got {type(obj).__name__}"
            )
        if "type" not in obj:
            raise InvalidEvent("invalid_field", "missing required field 'type'")
        event_type = obj["type"]
        if not isinstance(event_type, str):
            raise InvalidEvent("unknown_event_type", f"type must be a string, not {event_type!r}")
        info = self._schema_for(event_type, obj.get("schema_version"))
        try:
            record = self._checks[(info.event_type, info.version)](obj, event_type)
        except Problem as bad:
            raise InvalidEvent(bad.reason, bad.message) from None
        return event_from_record(event_type, record)

    def event_to_json(self, event: Event) -> dict[str, Any]:
        """The JSON form of ``event``: ``type``, ``schema_version``, fields in schema order."""
        info = self.registry.reader(event.TYPE)
        if info is None:
            raise InvalidEvent("unknown_event_type", f"unknown event type {event.TYPE!r}")
        record = event_to_record(event)
        out: dict[str, Any] = {"type": event.TYPE, "schema_version": info.version}
        for f in info.schema["fields"]:
            name = f["name"]
            if name not in record:
                continue
            value = record[name]
            if name in info.timestamp_fields and value is not None:
                value = ms_to_iso(value)
            out[name] = value
        return out


_default: JsonForm | None = None


def _form() -> JsonForm:
    global _default
    if _default is None:
        _default = JsonForm()
    return _default


def event_from_json(obj: Any) -> Event:
    """Validate a JSON object (already parsed) and build its event; raises InvalidEvent."""
    return _form().event_from_json(obj)


def event_to_json(event: Event) -> dict[str, Any]:
    """The JSON form of an event, as a dict ready for ``json.dumps``."""
    return _form().event_to_json(event)


def canonical_json(event: Event) -> str:
    """Deterministic JSON text of an event: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(
        event_to_json(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses duplicate keys and NaN/Infinity, and bytes that are not
    UTF-8 (``json.loads`` would guess UTF-16 or UTF-32 from the bytes and half-read them);
    raises InvalidEvent."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent("malformed_json", f"not UTF-8 text: {exc}") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise InvalidEvent("malformed_json", f"not valid JSON: {exc}") from None


def parse_line(line: str | bytes) -> Event:
    """One JSON-lines line to an event; raises InvalidEvent."""
    return event_from_json(parse_json(line))


def iter_jsonl(lines: Iterable[str | bytes]) -> Iterator[tuple[int, Event | InvalidEvent]]:
    """(1-based line number, event or the InvalidEvent explaining the line); blank lines
    are skipped. Never raises for bad content."""
    for number, line in enumerate(lines, 1):
        if number == 1:  # a byte-order mark is not part of the first event
            line = (
                line.removeprefix(b"\xef\xbb\xbf")
                if isinstance(line, bytes)
                else line.removeprefix("\ufeff")
            )
        if not line.strip():
            continue
        try:
            yield number, parse_line(line)
        except InvalidEvent as exc:
            yield number, exc


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Event | InvalidEvent]]:
    """The events of a JSON-lines file, as ``iter_jsonl``; bad lines do not stop reading."""
    with open(path, "rb") as fh:
        yield from iter_jsonl(fh)


__all__ = [
    "JsonForm",
    "canonical_json",
    "event_from_json",
    "event_to_json",
    "iso_to_ms",
    "iter_jsonl",
    "ms_to_iso",
    "parse_json",
    "parse_line",
    "read_jsonl",
]
