"""The ledger's arrival order over Kafka: aligned barriers (docs/ordering.md).

Pure: no Kafka client, no SQL. The loop feeds it the decoded records of the partitions it
owns and a snapshot of every partition's committed progress; it hands back the longest
prefix of the arrival order that this process may apply now, as one batch.

The order, as a function of the topics' contents alone:
- every partition is applied in offset order;
- the accounts partition (barriers: plans, enrollments, settlement runs, payouts) is one
  total order;
- an orders partition carries **markers** (``Marker``): a marker with barrier offset *o*
  says that the records before it come before every accounts record at offset <= *o*, and
  the records after it come after them. For each barrier, the first marker >= its offset
  in each orders partition is its cut there.

Two rules enforce it, whatever the poll sizes and however many processes share the work:
- **hold**: after passing a marker *o*, an orders partition applies nothing more until
  the accounts partition's committed offset is past *o*;
- **wait**: the accounts record at offset *o* is applied only once every orders partition
  has passed a marker >= *o* (so each is exactly at its cut, and held there).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ledger.offsets import Advance, Marker, Stored, TopicPartition, advances_for, after
from ledger.service import Received, Undecodable

Item = Received | Undecodable | Marker


@dataclass
class Batch:
    items: list[Item] = field(default_factory=list)  # markers included: they move checkpoints
    advances: list[Advance] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


class Merger:
    """Buffers the records of owned partitions and releases them in arrival order.

    ``orders_partitions`` is the number of partitions of the orders topic (every one of
    them must pass a marker before a barrier applies, owned here or not)."""

    def __init__(self, orders_topic: str, accounts_topic: str, orders_partitions: int) -> None:
        self.orders_topic = orders_topic
        self.accounts = (accounts_topic, 0)
        self.orders = [(orders_topic, p) for p in range(orders_partitions)]
        self._buffers: dict[TopicPartition, deque[Item]] = {}
        self._stored: dict[TopicPartition, Stored] = {}  # owned partitions, as committed

    # -- ownership and positions -----------------------------------------------------------

    def own(self, tp: TopicPartition, stored: Stored) -> None:
        """Take ``tp`` from its stored checkpoint (the loop seeks the client there)."""
        self._buffers[tp] = deque()
        self._stored[tp] = stored

    def disown(self, tp: TopicPartition) -> None:
        self._buffers.pop(tp, None)
        self._stored.pop(tp, None)

    def owned(self) -> list[TopicPartition]:
        return sorted(self._stored)

    def stored(self, tp: TopicPartition) -> Stored | None:
        return self._stored.get(tp)

    def add(self, tp: TopicPartition, items: list[Item]) -> None:
        """Buffer records polled for ``tp``; any already buffered or applied (a fetch
        that raced a seek) is dropped, so each offset enters the order once."""
        buffer = self._buffers.get(tp)
        if buffer is None or not items:
            return
        expected = _offset(buffer[-1]) + 1 if buffer else self._stored[tp].next_offset
        if _offset(items[0]) < expected:
            items = [item for item in items if _offset(item) >= expected]
        buffer.extend(items)

    def trim(self, tp: TopicPartition, keep: int) -> int | None:
        """Forget all but the first ``keep`` buffered records of ``tp``; returns the
        offset of the first one forgotten (to fetch again from), None if none was."""
        buffer = self._buffers.get(tp)
        if buffer is None or len(buffer) <= keep:
            return None
        dropped = [buffer.pop() for _ in range(len(buffer) - keep)]
        return _offset(dropped[-1])

    def buffered(self, tp: TopicPartition) -> int:
        return len(self._buffers.get(tp, ()))

    def committed(self, batch: Batch) -> None:
        """The batch's transaction committed: its advances are the stored state now."""
        moved = after(self._stored, batch.advances)
        self._stored = {tp: moved[tp] for tp in self._stored}

    def view(self, progress: dict[TopicPartition, Stored]) -> dict[TopicPartition, Stored]:
        """Every partition's checkpoint: ``progress`` (committed by others), overridden by
        the owned partitions' own."""
        return {**progress, **self._stored}

    # -- the order -------------------------------------------------------------------------

    def next_batch(self, progress: dict[TopicPartition, Stored], limit: int) -> Batch:
        """The longest applicable prefix (at most ``limit`` items) given ``progress``, the
        committed state of partitions owned elsewhere. Owned partitions use their own
        stored state; their buffers lose what the batch takes."""
        view = self.view(progress)
        markers = {tp: view.get(tp, Stored(0)).marker for tp in self.orders}
        accounts_next = view.get(self.accounts, Stored(0)).next_offset
        items: list[Item] = []
        progressed = True
        while progressed and len(items) < limit:
            progressed = False
            for tp in self.orders:
                buffer = self._buffers.get(tp)
                # hold: nothing passes a marker not yet behind the accounts offset
                while buffer and len(items) < limit and markers[tp] < accounts_next:
                    item = buffer.popleft()
                    if isinstance(item, Marker):
                        markers[tp] = max(markers[tp], item.barrier)
                    items.append(item)
                    progressed = True
            buffer = self._buffers.get(self.accounts)
            # wait: a barrier applies once every orders partition is at its cut
            while (
                buffer
                and len(items) < limit
                and min(markers.values(), default=0) >= (offset := _offset(buffer[0]))
            ):
                items.append(buffer.popleft())
                accounts_next = offset + 1
                progressed = True
        return Batch(items, advances_for(items, self._stored))

    def waiting_for(self, progress: dict[TopicPartition, Stored]) -> str | None:
        """Why nothing can be applied although records are buffered: ``"accounts"`` (a
        held orders partition waits for a barrier applied elsewhere), ``"markers"`` (a
        buffered barrier waits for orders partitions owned elsewhere or not yet read), or
        None (nothing buffered)."""
        view = self.view(progress)
        accounts_next = view.get(self.accounts, Stored(0)).next_offset
        if self._buffers.get(self.accounts):
            return "markers"
        for tp in self.orders:
            if self._buffers.get(tp) and view.get(tp, Stored(0)).marker >= accounts_next:
                return "accounts"
        return None

    def lagging_partitions(
        self, barrier: int, progress: dict[TopicPartition, Stored]
    ) -> list[TopicPartition]:
        """The orders partitions that have not passed a marker >= ``barrier``."""
        view = self.view(progress)
        return [tp for tp in self.orders if view.get(tp, Stored(0)).marker < barrier]

    def next_barrier(self) -> int | None:
        """The offset of the first buffered accounts record, if any."""
        buffer = self._buffers.get(self.accounts)
        return _offset(buffer[0]) if buffer else None


def _offset(item: Item) -> int:
    assert item.position is not None  # every record from Kafka has one
    return item.position[2]
