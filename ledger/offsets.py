"""Consumer checkpoints: where each partition of a consumer group stands, and how a batch
moves it (docs/ordering.md). Plain values; the SQL is in ledger/store/offsets.py.

A batch carries one ``Advance`` per partition it read; its transaction compares each
partition's stored next offset with ``start`` and sets ``end`` only if they are equal.
So a process that lost its partition (a zombie after a rebalance, a paused process) can
never commit: its ``start`` is behind what the new owner stored (``Fenced``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TopicPartition = tuple[str, int]
NO_MARKER = -1  # the marker value of a partition that has passed none


class Fenced(Exception):
    """The stored checkpoint of a partition is not where the batch started: another
    process applied it meanwhile. Nothing of the batch was committed."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A barrier marker read from an orders partition: nothing for the engine, only order
    (every accounts record at or before offset ``barrier`` comes before what follows)."""

    barrier: int
    source: str
    position: tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class Stored:
    """What the database holds for one partition of a consumer group."""

    next_offset: int  # the next offset to apply
    marker: int = NO_MARKER  # the highest marker passed (orders partitions)


@dataclass(frozen=True, slots=True)
class Advance:
    """One partition's checkpoint move: compared with ``start``, set to ``end``/``marker``."""

    topic: str
    partition: int
    start: int
    end: int
    marker: int


def advances_for(items: Iterable[Any], starts: Mapping[TopicPartition, Stored]) -> list[Advance]:
    """The advances of the partitions ``items`` (in order, each with a ``position``) read,
    from the checkpoints ``starts``."""
    ends: dict[TopicPartition, int] = {}
    markers: dict[TopicPartition, int] = {}
    for item in items:
        if item.position is None:
            continue
        topic, partition, offset = item.position
        tp = (topic, partition)
        ends[tp] = offset + 1
        if isinstance(item, Marker):
            markers[tp] = max(markers.get(tp, NO_MARKER), item.barrier)
    out = []
    for tp, end in sorted(ends.items()):
        start = starts.get(tp, Stored(0))
        out.append(
            Advance(
                tp[0], tp[1], start.next_offset, end, max(start.marker, markers.get(tp, NO_MARKER))
            )
        )
    return out


def after(
    starts: Mapping[TopicPartition, Stored], advances: Iterable[Advance]
) -> dict[TopicPartition, Stored]:
    """``starts`` with ``advances`` applied."""
    out = dict(starts)
    for a in advances:
        out[(a.topic, a.partition)] = Stored(a.end, a.marker)
    return out
