"""The export file: an Avro object container file (OCF) written and read here, block by
block, with every size bounded, and sealed by a digest over everything it carries.

Why not fastavro's file reader: an export is evidence handed to someone else, so its
reader must treat it as hostile. Here a block may hold at most ``MAX_BLOCK_BYTES``
compressed and decompressed (a deflate bomb stops there), claim no more records than it
has bytes, and hold nothing after its records; the header is bounded too. Every problem
is an ``ExportError`` naming where it is (header, block, record). fastavro still encodes
and decodes the records themselves, with our schema only (never the file's).

Digest and seal (format ``ledger-export/2``)::

    digest = sha256( DOMAIN
                     ‖ u64 length ‖ canonical JSON of the header metadata (sorted keys)
                     ‖ for each record: u64 length ‖ its Avro binary encoding )

The metadata carries ``avro.schema``, ``avro.codec``, ``ledger.format`` and every head,
so the digest covers the format and version too. The last record, of kind ``seal``,
holds in ``payload`` the canonical JSON ``{"digest": hex, "records": n, "v": 2}`` and in
``signature`` the Ed25519 signature of ``SEAL_DOMAIN ‖ payload`` (null when unsigned).
A reader recomputes the digest as it streams and checks the seal at the end: verifying
needs one pass and constant memory. Nothing may follow the seal.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import fastavro

FORMAT = "ledger-export/2"
DOMAIN = b"commission-ledger export v2\n"
SEAL_DOMAIN = b"commission-ledger export seal v2\n"
MAGIC = b"Obj\x01"

MAX_HEADER_BYTES = 16 << 20  # the event schemas and the heads of every chain
MAX_METADATA_ENTRIES = 64
MAX_BLOCK_BYTES = 32 << 20  # compressed and decompressed: bounds replay's memory
BLOCK_TARGET_BYTES = 1 << 20  # the writer closes a block past this many record bytes
MAX_JSON_DEPTH = 32  # the metadata's JSON is flat; deeper is malformed, not a recursion

RECORD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "LedgerRecord",
    "namespace": "ledger.export.write",
    "doc": (
        "One event of the ledger's history, a dead letter that never became one, or the "
        "seal that ends the file."
    ),
    "fields": [
        {
            "name": "kind",
            "type": {
                "type": "enum",
                "name": "RecordKind",
                "symbols": ["event", "dead_letter", "seal"],
            },
        },
        {"name": "arrival", "type": ["null", "long"], "doc": "ledger arrival number"},
        {"name": "event_id", "type": ["null", "string"]},
        {"name": "event_type", "type": ["null", "string"]},
        {"name": "occurred_at", "type": ["null", "long"], "doc": "event time, ms (UTC)"},
        {"name": "recorded_at", "type": "long", "doc": "when the ledger recorded it, ms"},
        {"name": "source", "type": "string"},
        {
            "name": "outcome",
            "type": "string",
            "doc": "applied | rejected | parked on arrival; dead_letter; seal",
        },
        {"name": "chain", "type": ["null", "string"], "doc": "the event log chain it is in"},
        {"name": "chain_seq", "type": ["null", "long"], "doc": "its position in that chain"},
        {"name": "hash", "type": ["null", "string"], "doc": "its event log link hash"},
        {"name": "reason", "type": ["null", "string"]},
        {"name": "message", "type": ["null", "string"]},
        {
            "name": "payload",
            "type": "string",
            "doc": "stored JSON form (events), the raw record (dead letters), the seal body",
        },
        {
            "name": "avro",
            "type": ["null", "bytes"],
            "doc": "Avro single-object encoding, schema in metadata ledger.event_schemas",
        },
        {"name": "signature", "type": ["null", "bytes"], "doc": "seal: Ed25519 signature"},
    ],
}
SCHEMA_JSON = json.dumps(RECORD_SCHEMA, separators=(",", ":"))
_PARSED = fastavro.parse_schema(RECORD_SCHEMA)


class ExportError(ValueError):
    """The file is not a well-formed export; the message says what and where."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def bounded_json(text: str, what: str) -> Any:
    """``json.loads`` that refuses nesting deeper than ``MAX_JSON_DEPTH`` (before the
    parser recurses) with an ExportError naming ``what``."""
    depth = deepest = 0
    quoted = escaped = False
    for ch in text:  # brackets outside strings only
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_JSON_DEPTH:
        raise ExportError(f"{what} is nested {deepest} deep: malformed")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ExportError(f"{what} is not JSON ({exc})") from exc


class Digest:
    """The running digest of an export (see the module docstring)."""

    def __init__(self, metadata: Mapping[str, str]) -> None:
        self._hash = hashlib.sha256(DOMAIN)
        self._part(canonical_json(dict(metadata)))

    def _part(self, data: bytes) -> None:
        self._hash.update(len(data).to_bytes(8, "big"))
        self._hash.update(data)

    def record(self, encoded: bytes) -> None:
        self._part(encoded)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def seal_body(digest: str, records: int) -> str:
    return canonical_json({"digest": digest, "records": records, "v": 2}).decode("ascii")


def seal_record(body: str, signature: bytes | None) -> dict[str, Any]:
    return {
        "kind": "seal",
        "arrival": None,
        "event_id": None,
        "event_type": None,
        "occurred_at": None,
        "recorded_at": 0,
        "source": "",
        "outcome": "seal",
        "chain": None,
        "chain_seq": None,
        "hash": None,
        "reason": None,
        "message": None,
        "payload": body,
        "avro": None,
        "signature": signature,
    }


def encode(record: Mapping[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _PARSED, dict(record))
    return out.getvalue()


# --- writing -----------------------------------------------------------------------------


def _long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _bytes(data: bytes) -> bytes:
    return _long(len(data)) + data


class Writer:
    """Writes an OCF of ``RECORD_SCHEMA`` (deflate blocks) to ``out``; ``metadata`` are the
    ``ledger.*`` entries. ``write`` returns the encoded record (for the digest)."""

    def __init__(self, out: BinaryIO, metadata: Mapping[str, str]) -> None:
        self.out = out
        self.sync = os.urandom(16)
        self.metadata = {"avro.schema": SCHEMA_JSON, "avro.codec": "deflate", **metadata}
        header = bytearray(MAGIC)
        header += _long(len(self.metadata))
        for key, value in self.metadata.items():
            header += _bytes(key.encode()) + _bytes(value.encode())
        header += _long(0) + self.sync
        if len(header) > MAX_HEADER_BYTES:
            raise ExportError(f"a header of {len(header)} bytes (at most {MAX_HEADER_BYTES})")
        out.write(header)
        self._block: list[bytes] = []
        self._size = 0

    def write(self, record: Mapping[str, Any]) -> bytes:
        encoded = encode(record)
        if len(encoded) > MAX_BLOCK_BYTES:  # no reader of ours would take the file
            raise ExportError(f"a record of {len(encoded)} bytes (at most {MAX_BLOCK_BYTES})")
        if self._size + len(encoded) > BLOCK_TARGET_BYTES:
            self.flush()  # so a block holds at most max(target, one record) bytes
        self._block.append(encoded)
        self._size += len(encoded)
        return encoded

    def flush(self) -> None:
        if not self._block:
            return
        squeeze = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = squeeze.compress(b"".join(self._block)) + squeeze.flush()
        self.out.write(_long(len(self._block)) + _bytes(data) + self.sync)
        self._block, self._size = [], 0


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    index: int  # 0-based position in the file
    block: int
    fields: dict[str, Any]
    encoded: bytes

    @property
    def where(self) -> str:
        return f"record {self.index} (block {self.block})"


class _Source:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh

    def exact(self, n: int, what: str) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ExportError(f"the file ends inside {what}: truncated")
        return data

    def long(self, what: str) -> int:
        shift = result = 0
        for _ in range(10):
            byte = self.fh.read(1)
            if not byte:
                raise ExportError(f"the file ends inside {what}: truncated")
            result |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
        raise ExportError(f"{what} is not a valid Avro long")

    def at_end(self) -> bool:
        return not self.fh.peek(1) if hasattr(self.fh, "peek") else self._probe()

    def _probe(self) -> bool:
        position = self.fh.tell()
        end = not self.fh.read(1)
        self.fh.seek(position)
        return end


def read_header(fh: BinaryIO) -> tuple[dict[str, str], bytes]:
    """(metadata, sync marker) of the OCF at ``fh``; ExportError if it is not one of ours."""
    src = _Source(fh)
    if fh.read(4) != MAGIC:
        raise ExportError("not an Avro object container file (no 'Obj\\x01' magic)")
    metadata: dict[str, str] = {}
    budget = MAX_HEADER_BYTES
    while True:
        count = src.long("the header")
        if count == 0:
            break
        if count < 0:  # a negative count is followed by the block's byte size
            count = -count
            src.long("the header")
        if len(metadata) + count > MAX_METADATA_ENTRIES:
            raise ExportError(f"the header claims more than {MAX_METADATA_ENTRIES} entries")
        for _ in range(count):
            parts = []
            for what in ("key", "value"):
                size = src.long(f"a header {what}")
                if size < 0 or size > budget:
                    raise ExportError(f"a header {what} of {size} bytes: malformed or too large")
                budget -= size
                raw = src.exact(size, f"a header {what}")
                try:
                    parts.append(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise ExportError(f"a header {what} is not UTF-8") from exc
            if parts[0] in metadata:  # readers differ on which value wins: refuse both
                raise ExportError(f"the header names {parts[0]!r:.80} twice")
            metadata[parts[0]] = parts[1]
    sync = src.exact(16, "the header's sync marker")
    if metadata.get("ledger.format") != FORMAT:
        found = metadata.get("ledger.format")
        raise ExportError(f"not a {FORMAT} file (format {found!r:.80})")
    if metadata.get("avro.codec") != "deflate":
        raise ExportError(f"unsupported codec {metadata.get('avro.codec')!r:.80}")
    if bounded_json(metadata.get("avro.schema", ""), "avro.schema") != json.loads(SCHEMA_JSON):
        raise ExportError("the file's record schema is not the ledger export schema")
    return metadata, sync


def read_records(fh: BinaryIO, sync: bytes) -> Iterator[Record]:
    """Every record after the header, block by block, each size bounded."""
    src = _Source(fh)
    index = block = 0
    while not src.at_end():
        where = f"block {block}"
        count = src.long(f"{where}'s record count")
        size = src.long(f"{where}'s size")
        if not 0 <= size <= MAX_BLOCK_BYTES:
            raise ExportError(f"{where} claims {size} bytes (at most {MAX_BLOCK_BYTES})")
        if not 0 < count <= size:
            raise ExportError(f"{where} claims {count} records in {size} bytes")
        data = _inflate(src.exact(size, where), where)
        if src.exact(16, f"{where}'s sync marker") != sync:
            raise ExportError(f"{where} does not end with the file's sync marker")
        stream = io.BytesIO(data)
        for _ in range(count):
            start = stream.tell()
            try:
                fields = fastavro.schemaless_reader(stream, _PARSED, None)
            except Exception as exc:
                raise ExportError(
                    f"record {index} (block {block}) does not decode ({type(exc).__name__}: "
                    f"{str(exc)[:120]})"
                ) from exc
            assert isinstance(fields, dict)
            yield Record(index, block, fields, data[start : stream.tell()])
            index += 1
        if stream.tell() != len(data):
            raise ExportError(f"{where} holds bytes after its {count} records")
        block += 1


def _inflate(data: bytes, where: str) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, MAX_BLOCK_BYTES)
    except zlib.error as exc:
        raise ExportError(f"{where} does not inflate ({exc})") from exc
    if inflater.unconsumed_tail:
        raise ExportError(f"{where} inflates to more than {MAX_BLOCK_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise ExportError(f"{where} is not one complete deflate stream")
    return out
