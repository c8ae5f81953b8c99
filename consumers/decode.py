"""Turn a partition's polled records into items for the merger: events, dead letters
(records that never became events) or barrier markers.

Never raises for bad bytes: anything the codec refuses becomes an ``Undecodable`` with
its topic, partition, offset and reason, and the offsets still move past it. The order
in which partitions are applied is not decided here (consumers/ordering.py).
"""

from __future__ import annotations

from typing import Any

from consumers.ordering import Item
from ledger.domain.permissions import WRITER, Role, redrive_of, squatted_command_id
from ledger.domain.reasons import Reason
from ledger.kafka.topics import marker_offset
from ledger.offsets import Marker
from ledger.payload import dump_event
from ledger.service import Received, Undecodable
from schemas.codec import DecodeError, default_codec


def chain_of(topic: str, partition: int) -> str:
    """One hash chain per partition: writers of different partitions never contend."""
    return f"{topic}/{partition}"


def decode_partition(
    topic: str,
    partition: int,
    records: list[Any],
    allowed: frozenset[str],
    *,
    finance_topic: bool,
) -> list[Item]:
    """The records of one partition, in offset order, as items. An event whose type is
    not in ``allowed`` (the types that belong on ``topic``, ledger/kafka/topics.py) becomes a
    ``wrong_topic`` dead letter: the ACLs let a principal write a topic, not choose what
    its records do, so a payout in the orders topic (whose writers may not move money)
    must never be applied.

    ``finance_topic``: the records come from the accounts topic, which only the finance
    principal writes, so a well-formed redrive id (finance's correction of a dead letter,
    ledger/domain/permissions.py) is allowed there on a buyer-activity type; on the orders
    topic a redrive id is a ``reserved_event_id`` dead letter."""
    codec = default_codec()
    chain = chain_of(topic, partition)
    return [
        _decode_one(codec, topic, partition, chain, record, allowed, finance_topic)
        for record in records
    ]


def _decode_one(
    codec: Any,
    topic: str,
    partition: int,
    chain: str,
    record: Any,
    allowed: frozenset[str],
    finance_topic: bool,
) -> Item:
    source = f"{topic}/{partition}@{record.offset}"
    position = (topic, partition, record.offset)
    value = record.value
    if record.headers:
        try:
            barrier = marker_offset(record.headers)
        except ValueError as bad:
            return Undecodable(
                source, Reason.BAD_BARRIER_MARKER, str(bad), (value or b"").hex(), position=position
            )
        if barrier is not None:
            return Marker(barrier, source, position)
    if value is None:
        return Undecodable(
            source, Reason.EMPTY_RECORD, "record has no value", "", position=position
        )
    try:
        event = codec.decode(value)
    except DecodeError as bad:
        return Undecodable(source, bad.reason, bad.message, bytes(value).hex(), position=position)
    redrive = finance_topic and redrive_of(event.event_id) is not None
    if event.TYPE not in allowed and not (redrive and WRITER.get(event.TYPE) is Role.PUBLISHER):
        return Undecodable(
            source,
            Reason.WRONG_TOPIC,
            f"{event.TYPE} does not belong on topic {topic}",
            dump_event(event),
            event_id=event.event_id,
            event_type=event.TYPE,
            position=position,
        )
    squatted = squatted_command_id(event.TYPE, event.event_id, finance_path=finance_topic)
    if squatted is not None:  # refused before it is logged: the id stays finance's
        return Undecodable(
            source,
            Reason.RESERVED_EVENT_ID,
            squatted,
            dump_event(event),
            event_id=event.event_id,
            event_type=event.TYPE,
            position=position,
        )
    return Received(event, source, chain, position)
