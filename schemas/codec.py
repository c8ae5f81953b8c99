"""Encode events to, and decode them from, Avro single-object encoding.

Wire format (Avro specification, "Single object encoding"): the marker ``C3 01``, the
writer schema's CRC-64-AVRO fingerprint as 8 little-endian bytes, then the Avro binary
payload. Decoding resolves the writer schema (looked up by fingerprint) to the reader
schema of the event type (its latest version), so producers and consumers can upgrade
independently within the compatible evolution rules.

Contract of ``decode``: for any input bytes it returns an ``Event`` or raises
``DecodeError`` with ``reason`` one of ``DECODE_REASONS``; nothing else escapes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import fastavro

from ledger.domain.events import Event, InvalidEvent, event_to_record
from schemas.records import Converter, compile_converter
from schemas.registry import Registry, SchemaInfo
from schemas.times import MAX_TIME_MS, MIN_TIME_MS
from schemas.validate import Check, Problem, compile_record_check

MARKER = b"\xc3\x01"
HEADER_SIZE = 10

DECODE_REASONS = frozenset(
    ["bad_marker", "truncated", "unknown_fingerprint", "malformed_payload", "invalid_value"]
)


class DecodeError(ValueError):
    """Bytes that are not a valid event. ``reason`` is one of ``DECODE_REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class EncodeError(ValueError):
    """An event that does not fit its schema; names the event."""

    def __init__(self, event_id: str | None, message: str) -> None:
        super().__init__(f"event {event_id!r}: {message}")
        self.event_id = event_id
        self.message = message


@dataclass(frozen=True, eq=False)
class _ReadPlan:
    writer: SchemaInfo
    reader: SchemaInfo
    reader_parsed: Any  # None when writer is reader: fastavro then skips resolution
    convert: Converter


def check_times(info: SchemaInfo, record: dict[str, Any]) -> str | None:
    """The first timestamp field of ``record`` outside the supported range, if any."""
    for name in info.timestamp_fields:
        value = record.get(name)
        if value is not None and not MIN_TIME_MS <= value <= MAX_TIME_MS:
            return f"{name}={value} is outside years 0001..9999"
    return None


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise DecodeError("malformed_payload", f"expected bytes, got {type(data).__name__}")


class Codec:
    """Encoder/decoder bound to one registry. Safe to share between threads."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry.default()
        self._plans: dict[bytes, _ReadPlan] = {}
        self._checks: dict[bytes, Check] = {
            info.header: compile_record_check(info.schema) for info in self.registry
        }
        converters = {
            t: compile_converter(t, self.registry.reader(t).schema)  # type: ignore[union-attr]
            for t in self.registry.event_types()
        }
        for info in self.registry:
            reader = self.registry.reader(info.event_type)
            assert reader is not None
            self._plans[info.header] = _ReadPlan(
                info,
                reader,
                None if reader is info else reader.parsed,
                converters[info.event_type],
            )

    # -- encoding -------------------------------------------------------------------

    def encode(self, event: Event) -> bytes:
        """Single-object encoding of ``event`` with its type's latest schema.

        Raises ``EncodeError`` if the type has no schema or a field does not fit it.
        """
        try:
            record = event_to_record(event)
        except Exception as exc:  # not a dataclass event at all
            raise EncodeError(getattr(event, "event_id", None), f"not an event: {exc}") from exc
        return self.encode_record(event.TYPE, record, event_id=event.event_id)

    def encode_record(
        self,
        event_type: str,
        record: dict[str, Any],
        version: int | None = None,
        event_id: str | None = None,
    ) -> bytes:
        """Encode a plain record (times in ms) with the given or latest schema version."""
        info = (
            self.registry.reader(event_type)
            if version is None
            else self.registry.get(event_type, version)
        )
        if info is None:
            raise EncodeError(event_id, f"no schema for {event_type!r} version {version}")
        try:
            record = self._checks[info.header](record, event_type)
        except Problem as exc:
            raise EncodeError(
                event_id, f"does not fit {event_type} v{info.version}: {exc}"
            ) from exc
        out = io.BytesIO()
        out.write(info.header)
        try:
            fastavro.schemaless_writer(out, info.parsed, record, strict=True)
        except Exception as exc:  # e.g. a lone surrogate in a string
            raise EncodeError(event_id, f"cannot encode: {exc}") from exc
        return out.getvalue()

    # -- decoding -------------------------------------------------------------------

    def _plan(self, data: bytes) -> _ReadPlan:
        plan = self._plans.get(data[:HEADER_SIZE])
        if plan is not None:
            return plan
        if data[:2] != MARKER[: len(data)]:
            raise DecodeError("bad_marker", f"expected marker c301, got {data[:2].hex()}")
        if len(data) < HEADER_SIZE:
            raise DecodeError("truncated", f"{len(data)} bytes, shorter than the 10-byte header")
        raise DecodeError(
            "unknown_fingerprint", f"no schema with fingerprint {data[2:HEADER_SIZE].hex()}"
        )

    def decode_record(self, data: bytes) -> tuple[SchemaInfo, SchemaInfo, dict[str, Any]]:
        """(writer schema, reader schema, record resolved to the reader), times in ms.

        Raises ``DecodeError`` for anything but a complete, well-formed record.
        """
        plan, record = self._read(data)
        return plan.writer, plan.reader, record

    def _read(self, data: bytes) -> tuple[_ReadPlan, dict[str, Any]]:
        if not isinstance(data, bytes):
            data = _as_bytes(data)
        plan = self._plan(data)
        fo = io.BytesIO(data)
        fo.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(fo, plan.writer.parsed, plan.reader_parsed)
        except EOFError as exc:
            raise DecodeError("truncated", f"payload ends early: {exc}") from exc
        except IndexError as exc:
            # fastavro 1.13's compiled reader runs off the end of a varint with "string
            # index out of range"; a bad union index is "list index out of range".
            if "string index" in str(exc):
                raise DecodeError("truncated", f"payload ends early: {exc}") from exc
            raise DecodeError("malformed_payload", f"IndexError: {exc}") from exc
        except Exception as exc:  # bad utf-8, overlong varint, ...
            raise DecodeError("malformed_payload", f"{type(exc).__name__}: {exc}") from exc
        if fo.tell() != len(data):
            raise DecodeError(
                "malformed_payload", f"{len(data) - fo.tell()} trailing bytes after the record"
            )
        if not isinstance(record, dict):
            raise DecodeError("malformed_payload", "payload is not a record")
        return plan, record

    def decode(self, data: bytes) -> Event:
        """The event encoded in ``data``; raises ``DecodeError`` (and nothing else)."""
        plan, record = self._read(data)
        problem = check_times(plan.reader, record)
        if problem:
            raise DecodeError("invalid_value", f"{plan.reader.event_type}: {problem}")
        try:
            return plan.convert(record)
        except InvalidEvent as exc:
            raise DecodeError("invalid_value", exc.message) from exc
        except Exception as exc:  # the domain constructor refused the values
            raise DecodeError("invalid_value", f"{plan.reader.event_type}: {exc}") from exc

    def writer_schema(self, data: bytes) -> SchemaInfo:
        """The writer schema named by the header, without decoding the payload."""
        if not isinstance(data, bytes):
            data = _as_bytes(data)
        return self._plan(data).writer

    def event_type_of(self, data: bytes) -> str:
        """The event type named by the header; raises ``DecodeError``."""
        return self.writer_schema(data).event_type


_default: Codec | None = None


def default_codec() -> Codec:
    """The process-wide codec over the production registry, built on first use."""
    global _default
    if _default is None:
        _default = Codec()
    return _default


def encode(event: Event) -> bytes:
    """``default_codec().encode(event)``."""
    return default_codec().encode(event)


def decode(data: bytes) -> Event:
    """``default_codec().decode(data)``."""
    return default_codec().decode(data)


def event_type_of(data: bytes) -> str:
    """``default_codec().event_type_of(data)``."""
    return default_codec().event_type_of(data)
