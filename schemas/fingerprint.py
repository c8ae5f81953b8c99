"""Avro Parsing Canonical Form and the CRC-64-AVRO fingerprint, per the Avro specification.

Written out here (rather than taken from fastavro) because the fingerprint is the wire
contract of single-object encoding: fastavro gets the canonical form wrong for named types
shared across files (docs/platform.md), and the tests cross-check this module against
fastavro for our self-contained schemas and against Apache Avro for Java.
"""

from __future__ import annotations

import json
from typing import Any

PRIMITIVES = frozenset(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])
_NAMED = frozenset(["record", "error", "enum", "fixed"])
# [ORDER]: the only attributes kept, in this order.
_KEEP = ("name", "type", "fields", "symbols", "items", "values", "size")

CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint the Avro spec calls CRC-64-AVRO, as an unsigned int."""
    fp = CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _canonical(schema: Any, namespace: str | None, seen: set[str]) -> Any:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        return _fullname(schema, namespace)  # a reference to a named type defined earlier
    if isinstance(schema, list):
        return [_canonical(branch, namespace, seen) for branch in schema]
    if not isinstance(schema, dict):
        raise TypeError(f"not an Avro schema: {schema!r}")
    type_ = schema["type"]
    if not isinstance(type_, str):  # {"type": {...}} wraps a schema
        return _canonical(type_, namespace, seen)
    if type_ in PRIMITIVES:
        return type_  # [PRIMITIVES] and [STRIP]: logicalType and friends go
    out: dict[str, Any] = {}
    if type_ in _NAMED:
        name = _fullname(schema["name"], schema.get("namespace", namespace))
        if name in seen:
            return name
        seen.add(name)
        namespace = name.rpartition(".")[0] or None
        out["name"] = name
    out["type"] = type_
    if type_ in ("record", "error"):
        out["fields"] = [
            {"name": f["name"], "type": _canonical(f["type"], namespace, seen)}
            for f in schema["fields"]
        ]
    elif type_ == "enum":
        out["symbols"] = list(schema["symbols"])
    elif type_ == "array":
        out["items"] = _canonical(schema["items"], namespace, seen)
    elif type_ == "map":
        out["values"] = _canonical(schema["values"], namespace, seen)
    elif type_ == "fixed":
        out["size"] = int(schema["size"])
    else:  # {"type": "SomeName"}: a reference to a named type
        return _fullname(type_, namespace)
    return {key: out[key] for key in _KEEP if key in out}


def parsing_canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form of a schema given as parsed JSON (dict, list or str).

    Named types must be defined in ``schema`` itself (the project keeps every schema
    self-contained); a reference to a name defined elsewhere is kept as its full name.
    """
    form = _canonical(schema, None, set())
    return json.dumps(form, separators=(",", ":"), ensure_ascii=False)


def fingerprint(schema: Any) -> int:
    """CRC-64-AVRO of the schema's Parsing Canonical Form (UTF-8)."""
    return crc64_avro(parsing_canonical_form(schema).encode("utf-8"))


__all__ = ["CRC64_EMPTY", "crc64_avro", "fingerprint", "parsing_canonical_form"]
