"""Turn a poll's records into the service's batch: decoded events or dead letters.

Never raises for bad bytes: anything the codec refuses becomes an ``Undecodable`` with
its topic, partition, offset and reason, and the offsets still move past it.

Order: Kafka orders records only within a partition, and a poll hands them over grouped
by partition. The batch interleaves the partitions by record timestamp (a stable merge:
each partition keeps its own order, ties keep the poll's order), so that a plan or an
enrollment published before an order is applied before it when both arrive in one poll.
"""

from __future__ import annotations

import heapq
from typing import Any

from ledger.service import Received, Undecodable
from schemas.codec import DecodeError, default_codec


def chain_of(topic: str, partition: int) -> str:
    """One hash chain per partition: writers of different partitions never contend."""
    return f"{topic}/{partition}"


def decode_records(
    polled: dict[Any, list[Any]],
) -> tuple[list[Received | Undecodable], dict[tuple[str, int], int]]:
    """(batch merged by record timestamp, next offset per (topic, partition))."""
    offsets: dict[tuple[str, int], int] = {}
    runs: list[list[tuple[int, Received | Undecodable]]] = []
    for tp, records in polled.items():
        if not records:
            continue
        runs.append(_decode_partition(tp, records))
        offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
    if len(runs) == 1:
        return [item for _, item in runs[0]], offsets
    merged = heapq.merge(*runs, key=lambda timed: timed[0])
    return [item for _, item in merged], offsets


def _decode_partition(tp: Any, records: list[Any]) -> list[tuple[int, Received | Undecodable]]:
    """(timestamp, decoded item) per record, in offset order. A timestamp that goes back
    within the partition is raised to the one before it: the merge needs each run sorted,
    and a partition's own order always wins."""
    codec = default_codec()
    chain = chain_of(tp.topic, tp.partition)
    out: list[tuple[int, Received | Undecodable]] = []
    at = 0
    for record in records:
        if type(record.timestamp) is int and record.timestamp > at:
            at = record.timestamp
        out.append((at, _decode_one(codec, tp, chain, record)))
    return out


def _decode_one(codec: Any, tp: Any, chain: str, record: Any) -> Received | Undecodable:
    source = f"{tp.topic}/{tp.partition}@{record.offset}"
    position = (tp.topic, tp.partition, record.offset)
    value = record.value
    if value is None:
        return Undecodable(source, "empty_record", "record has no value", "", position=position)
    try:
        return Received(codec.decode(value), source, chain, position)
    except DecodeError as bad:
        return Undecodable(source, bad.reason, bad.message, bytes(value).hex(),
                           position=position)
