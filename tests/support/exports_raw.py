"""An export's bytes taken apart (header, blocks) and put back together, to build the
malformed and hostile files a replay must refuse with one line."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

from ledger.export.file import _bytes, _long, read_header


@dataclass
class Raw:
    header: bytes  # up to and including the sync marker
    sync: bytes
    blocks: list[tuple[int, bytes]]  # (record count, inflated data)


def take_apart(path: Path) -> Raw:
    data = path.read_bytes()
    fh = io.BufferedReader(io.BytesIO(data))
    _, sync = read_header(fh)
    end = fh.tell()
    rest, blocks = data[end:], []
    while rest:
        count, rest = _read_long(rest)
        size, rest = _read_long(rest)
        blocks.append((count, zlib.decompress(rest[:size], -15)))
        rest = rest[size + 16 :]
    return Raw(data[:end], sync, blocks)


def put_together(raw: Raw) -> bytes:
    out = bytearray(raw.header)
    for count, data in raw.blocks:
        out += block(count, deflate(data), raw.sync)
    return bytes(out)


def block(count: int, compressed: bytes, sync: bytes) -> bytes:
    return _long(count) + _bytes(compressed) + sync


def deflate(data: bytes) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    return squeeze.compress(data) + squeeze.flush()


def bomb(inflated: int) -> bytes:
    """Raw deflate of ``inflated`` zero bytes (about a thousandth of that compressed)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [squeeze.compress(chunk) for _ in range(inflated >> 20)]
    return b"".join(parts) + squeeze.flush()


def _read_long(data: bytes) -> tuple[int, bytes]:
    shift = result = i = 0
    while True:
        byte = data[i]
        result |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), data[i:]
        shift += 7
