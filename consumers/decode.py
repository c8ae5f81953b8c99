"""Turn a poll's records into the service's batch: decoded events or dead letters.

Never raises for bad bytes: anything the codec refuses becomes an ``Undecodable`` with
its topic, partition, offset and reason, and the offsets still move past it.
"""

from __future__ import annotations

from typing import Any

from ledger.service import Received, Undecodable
from schemas.codec import DecodeError, default_codec


def chain_of(topic: str, partition: int) -> str:
    """One hash chain per partition: writers of different partitions never contend."""
    return f"{topic}/{partition}"


def decode_records(
    polled: dict[Any, list[Any]],
) -> tuple[list[Received | Undecodable], dict[tuple[str, int], int]]:
    """(batch in partition order, next offset per (topic, partition))."""
    codec = default_codec()
    batch: list[Received | Undecodable] = []
    offsets: dict[tuple[str, int], int] = {}
    for tp, records in polled.items():
        if not records:
            continue
        chain = chain_of(tp.topic, tp.partition)
        for record in records:
            source = f"{tp.topic}/{tp.partition}@{record.offset}"
            position = (tp.topic, tp.partition, record.offset)
            value = record.value
            if value is None:
                batch.append(Undecodable(source, "empty_record", "record has no value", "",
                                         position=position))
                continue
            try:
                batch.append(Received(codec.decode(value), source, chain, position))
            except DecodeError as bad:
                batch.append(Undecodable(source, bad.reason, bad.message, bytes(value).hex(),
                                         position=position))
        offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
    return batch, offsets
