"""The JSON form of events (documented in docs/events.md).

An event's JSON form is an object with ``"type"`` (the event type), an optional
``"schema_version"`` and the event's fields under their Avro names. Times are ISO-8601 UTC
strings with milliseconds (``"2026-03-01T08:00:00.000Z"``); integer milliseconds are also
accepted on input. Input is validated against the Avro schema of the type, so whatever
this module accepts the codec can encode, and whatever the codec decodes has a JSON form.

Errors are ``InvalidEvent`` with ``reason``:
  malformed_json      not JSON, not an object, duplicate keys, NaN/Infinity
  unknown_event_type  ``type`` names no known event type
  invalid_field       a missing required field, an unknown field, or a value of the wrong
                      JSON type (a float or bool where an integer is required, a string
                      amount, ...): floats never carry money or counts
  invalid_value       the right JSON type but not a usable value: an integer out of range,
                      an unparseable or sub-millisecond time, an unknown schema_version
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.domain.events import Event, InvalidEvent, event_from_record, event_to_record
from schemas.codec import MAX_TIME_MS, MIN_TIME_MS
from schemas.registry import Registry, SchemaInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_RESERVED = ("type", "schema_version")


# -- times ----------------------------------------------------------------------------


def ms_to_iso(ms: int) -> str:
    """``1772352000000`` -> ``"2026-03-01T08:00:00.000Z"`` (always milliseconds, UTC)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z"
    )


def iso_to_ms(text: str) -> int:
    """Parse an ISO-8601 time with an explicit offset to integer ms; raises ValueError."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    if dt.microsecond % 1000:
        raise ValueError(f"time {text!r} is more precise than a millisecond")
    return (dt - _EPOCH) // _MS


# -- schema-driven validation ---------------------------------------------------------

Check = Callable[[Any, str], Any]


class _Bad(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _compile(schema: Any) -> Check:
    """A function validating one JSON value against ``schema``, returning the record value."""
    if isinstance(schema, list):
        return _compile_union(schema)
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis":
            return _check_time
        kind = schema["type"]
        if kind == "array":
            return _compile_array(schema)
        if kind == "record":
            return _compile_record(schema)
        return _compile(kind)
    if schema in _RANGES:
        return _integer_check(schema)
    if schema == "string":
        return _check_string
    if schema == "boolean":
        return _check_boolean
    raise ValueError(f"the JSON form does not support Avro type {schema!r}")


def _integer_check(kind: str) -> Check:
    low, high = _RANGES[kind]

    def check(value: Any, path: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad("invalid_field", f"{path}: expected an integer, got {_type_name(value)}")
        if not low <= value <= high:
            raise _Bad("invalid_value", f"{path}: {value} is out of range for an Avro {kind}")
        return value

    return check


def _check_string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _Bad("invalid_field", f"{path}: expected a string, got {_type_name(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _Bad("invalid_value", f"{path}: not valid Unicode text: {exc}") from exc
    return value


def _check_boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad("invalid_field", f"{path}: expected true or false, got {_type_name(value)}")
    return value


def _check_time(value: Any, path: str) -> int:
    if isinstance(value, str):
        try:
            ms = iso_to_ms(value)
        except (ValueError, OverflowError) as exc:
            raise _Bad("invalid_value", f"{path}: not an ISO-8601 UTC time: {exc}") from exc
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise _Bad(
            "invalid_field",
            f"{path}: expected an ISO-8601 time string or integer ms, got {_type_name(value)}",
        )
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise _Bad("invalid_value", f"{path}: {value!r} is outside years 0001..9999")
    return ms


def _compile_union(branches: list[Any]) -> Check:
    non_null = [b for b in branches if b != "null"]
    if len(non_null) != 1 or len(branches) != 2:
        raise ValueError(f"the JSON form only supports [null, T] unions, not {branches!r}")
    inner = _compile(non_null[0])

    def check(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)

    return check


def _compile_array(schema: dict[str, Any]) -> Check:
    item = _compile(schema["items"])

    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _Bad("invalid_field", f"{path}: expected a list, got {_type_name(value)}")
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return check


def _compile_record(schema: dict[str, Any], allowed: tuple[str, ...] = ()) -> Check:
    checks = []
    for f in schema["fields"]:
        t = f["type"]
        optional = isinstance(t, list) and "null" in t
        checks.append((f["name"], _compile(t), optional))
    known = {name for name, _, _ in checks} | set(allowed)

    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad("invalid_field", f"{path}: expected an object, got {_type_name(value)}")
        unknown = sorted(set(value) - known)
        if unknown:
            raise _Bad("invalid_field", f"{path}: unknown field(s) {', '.join(unknown)}")
        out = {}
        for name, check_field, optional in checks:
            if name not in value or (value[name] is None and not optional):
                if optional:
                    out[name] = None
                    continue
                raise _Bad("invalid_field", f"{path}: missing required field {name!r}")
            out[name] = check_field(value[name], f"{path}.{name}")
        return out

    return check


# -- the codec --------------------------------------------------------------------------


class JsonForm:
    """JSON form of the events of one schema registry (``Registry.default()`` if omitted)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry.default()
        self._checks: dict[tuple[str, int], Check] = {}
        for info in self.registry:
            self._checks[(info.event_type, info.version)] = _compile_record(
                info.schema, allowed=_RESERVED
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
            raise InvalidEvent("malformed_json", f"expected a JSON object, got {_type_name(obj)}")
        if "type" not in obj:
            raise InvalidEvent("invalid_field", "missing required field 'type'")
        event_type = obj["type"]
        if not isinstance(event_type, str):
            raise InvalidEvent("unknown_event_type", f"type must be a string, not {event_type!r}")
        info = self._schema_for(event_type, obj.get("schema_version"))
        try:
            record = self._checks[(info.event_type, info.version)](obj, event_type)
        except _Bad as bad:
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
    """``json.loads`` that refuses duplicate keys and NaN/Infinity; raises InvalidEvent."""
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
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf" if isinstance(line, bytes) else "\ufeff")
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
