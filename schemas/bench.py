"""Micro-benchmark of the codec against fastavro's raw reader.

    .venv/bin/python -m schemas.bench [N]

Prints records/s for: fastavro ``schemaless_reader`` alone on the payload (the ceiling),
``Codec.decode_record`` (header lookup, read, checks), ``Codec.decode`` (plus building the
frozen event dataclasses) and ``Codec.encode``, on the golden order_placed example and on
one example of every type in turn. Best of 3 runs, single thread.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable

import fastavro

from schemas.codec import Codec
from schemas.examples import EXAMPLES


def _rate(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main(n: int = 50_000) -> None:
    codec = Codec()
    order = next(e for e in EXAMPLES if e.TYPE == "order_placed")
    data = codec.encode(order)
    reader = codec.registry.reader("order_placed")
    assert reader is not None
    parsed = reader.parsed
    mixed = [codec.encode(e) for e in EXAMPLES]
    state = {"i": 0}

    def raw() -> object:
        fo = io.BytesIO(data)
        fo.seek(10)
        return fastavro.schemaless_reader(fo, parsed, None)

    def decode_mixed() -> object:
        state["i"] = (state["i"] + 1) % len(mixed)
        return codec.decode(mixed[state["i"]])

    print(f"order_placed record: {len(data)} bytes")
    for name, fn in [
        ("fastavro schemaless_reader (raw)", raw),
        ("Codec.decode_record", lambda: codec.decode_record(data)),
        ("Codec.decode -> OrderPlaced", lambda: codec.decode(data)),
        ("Codec.decode, all types in turn", decode_mixed),
        ("Codec.encode OrderPlaced", lambda: codec.encode(order)),
    ]:
        print(f"{name:34s} {_rate(fn, n):>10,.0f} records/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
