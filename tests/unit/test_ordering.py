"""The arrival order over Kafka (consumers/ordering.py, docs/ordering.md), checked on a
simulated cluster: topics written the way ``Publisher`` writes them, consumed by several
processes with random poll sizes, batch sizes, rebalances and zombies, against a shared
checkpoint table with compare-and-set. Whatever the schedule, every buyer record is
applied before or after every barrier exactly as published, and nothing twice."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.ordering import Batch, Item, Merger
from ledger.offsets import Fenced, Marker, Stored, after
from ledger.service import Undecodable

ORDERS, ACCOUNTS = "o", "a"


@dataclass
class Topics:
    logs: dict[tuple[str, int], list[Item]] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)  # ids in publish order

    def append(self, tp: tuple[str, int], make: object) -> int:
        log = self.logs.setdefault(tp, [])
        offset = len(log)
        log.append(make(offset))  # type: ignore[operator]
        return offset


def publish(script: list[int], partitions: int) -> Topics:
    """``script``: -1 publishes a barrier, p >= 0 a buyer record to partition p. Markers
    follow a run of barriers before the next buyer record, as ``Publisher`` does."""
    topics = Topics()
    for p in range(partitions):
        topics.logs[(ORDERS, p)] = []
    topics.logs[(ACCOUNTS, 0)] = []
    pending: int | None = None
    for n, step in enumerate(script + [None]):  # type: ignore[list-item]
        if step is not None and step < 0:
            ident = f"barrier-{n}"
            pending = topics.append((ACCOUNTS, 0), lambda o, i=ident: _record(i, ACCOUNTS, 0, o))
            topics.published.append(ident)
            continue
        if pending is not None:
            for p in range(partitions):
                topics.append(
                    (ORDERS, p),
                    lambda o, p=p, b=pending: Marker(b, f"{ORDERS}/{p}@{o}", (ORDERS, p, o)),
                )
            pending = None
        if step is not None:
            ident = f"buyer-{n}"
            topics.append((ORDERS, step), lambda o, i=ident, p=step: _record(i, ORDERS, p, o))
            topics.published.append(ident)
    return topics


def _record(ident: str, topic: str, partition: int, offset: int) -> Undecodable:
    return Undecodable(ident, "test", "", "", position=(topic, partition, offset))


class Cluster:
    """Processes sharing a checkpoint table; ``applied`` is the commit order."""

    def __init__(self, topics: Topics, partitions: int, rng: random.Random) -> None:
        self.topics = topics
        self.partitions = partitions
        self.rng = rng
        self.db: dict[tuple[str, int], Stored] = {tp: Stored(0) for tp in topics.logs}
        self.applied: list[str] = []
        self.fenced = 0

    def commit(self, batch: Batch) -> None:
        for a in batch.advances:
            if self.db[(a.topic, a.partition)].next_offset != a.start:
                self.fenced += 1
                raise Fenced(a.topic)
        self.db = after(self.db, batch.advances)
        self.applied.extend(i.source for i in batch.items if not isinstance(i, Marker))


class Process:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.merger = Merger(ORDERS, ACCOUNTS, cluster.partitions)
        self.fetch: dict[tuple[str, int], int] = {}

    def own(self, tp: tuple[str, int]) -> None:
        stored = self.cluster.db[tp]
        self.merger.own(tp, stored)
        self.fetch[tp] = stored.next_offset

    def disown(self, tp: tuple[str, int]) -> None:
        self.merger.disown(tp)
        self.fetch.pop(tp, None)

    def step(self, rng: random.Random) -> None:
        for tp in self.merger.owned():  # a poll of random size per partition
            log = self.cluster.topics.logs[tp]
            n = rng.randint(0, 4)
            self.merger.add(tp, log[self.fetch[tp] : self.fetch[tp] + n])
            self.fetch[tp] = min(len(log), self.fetch[tp] + n)
        batch = self.merger.next_batch(dict(self.cluster.db), rng.randint(1, 8))
        if not batch.items:
            return
        try:
            self.cluster.commit(batch)
            self.merger.committed(batch)
        except Fenced:
            for tp in self.merger.owned():
                self.own(tp)


def assign(processes: list[Process], tps: list[tuple[str, int]], rng: random.Random) -> None:
    for proc in processes:
        for tp in proc.merger.owned():
            proc.disown(tp)
    for tp in tps:
        rng.choice(processes).own(tp)


@settings(max_examples=300, deadline=None)
@given(
    script=st.lists(st.one_of(st.just(-1), st.integers(0, 3)), max_size=60),
    partitions=st.integers(1, 4),
    processes=st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_any_schedule_applies_the_published_order(
    script: list[int], partitions: int, processes: int, seed: int
) -> None:
    script = [s if s < partitions else s % partitions for s in script]
    rng = random.Random(seed)
    topics = publish(script, partitions)
    cluster = Cluster(topics, partitions, rng)
    procs = [Process(cluster) for _ in range(processes)]
    tps = sorted(topics.logs)
    assign(procs, tps, rng)
    zombie: Process | None = None
    total = len(topics.published)
    for _ in range(20_000):
        if len(cluster.applied) == total:
            break
        roll = rng.random()
        if roll < 0.03:  # a rebalance; sometimes the old owner lives on as a zombie
            if rng.random() < 0.5:
                zombie = rng.choice(procs)
                old = zombie
                procs = [p if p is not old else Process(cluster) for p in procs]
                zombie = old
            assign(procs, tps, rng)
        elif zombie is not None and roll < 0.1:
            zombie.step(rng)
        else:
            rng.choice(procs).step(rng)
    assert len(cluster.applied) == total, "the cluster stopped making progress"
    assert len(set(cluster.applied)) == total, "a record was applied twice"
    assert_same_cuts(cluster.applied, topics.published)


def assert_same_cuts(applied: list[str], published: list[str]) -> None:
    """Same order within the accounts partition and each buyer partition (checked through
    the barrier cuts), and every buyer record on the same side of every barrier."""
    barriers = [i for i in published if i.startswith("barrier")]
    assert [i for i in applied if i.startswith("barrier")] == barriers

    def sides(order: list[str]) -> dict[str, int]:
        before, out = 0, {}
        for ident in order:
            if ident.startswith("barrier"):
                before += 1
            else:
                out[ident] = before
        return out

    assert sides(applied) == sides(published)


def test_a_held_partition_waits_for_the_barrier_applied_elsewhere() -> None:
    """Process 1 owns orders partition 0 only: after the marker it holds until the
    database shows the accounts offset past the barrier."""
    topics = publish([0, -1, 0], partitions=1)
    merger = Merger(ORDERS, ACCOUNTS, 1)
    merger.own((ORDERS, 0), Stored(0))
    merger.add((ORDERS, 0), topics.logs[(ORDERS, 0)])
    first = merger.next_batch({(ACCOUNTS, 0): Stored(0)}, 100)
    assert [i.source for i in first.items] == ["buyer-0", "o/0@1"]
    assert first.advances[0].marker == 0
    merger.committed(first)
    assert merger.waiting_for({(ACCOUNTS, 0): Stored(0)}) == "accounts"
    assert not merger.next_batch({(ACCOUNTS, 0): Stored(0)}, 100).items
    rest = merger.next_batch({(ACCOUNTS, 0): Stored(1)}, 100)
    assert [i.source for i in rest.items] == ["buyer-2"]


def test_a_barrier_waits_for_every_partition_to_reach_its_marker() -> None:
    topics = publish([0, 1, -1, 1], partitions=2)
    merger = Merger(ORDERS, ACCOUNTS, 2)
    merger.own((ACCOUNTS, 0), Stored(0))
    merger.add((ACCOUNTS, 0), topics.logs[(ACCOUNTS, 0)])
    behind = {(ORDERS, 0): Stored(2, 0), (ORDERS, 1): Stored(1, -1)}
    assert not merger.next_batch(behind, 100).items
    assert merger.waiting_for(behind) == "markers"
    assert merger.lagging_partitions(0, behind) == [(ORDERS, 1)]
    there = {(ORDERS, 0): Stored(2, 0), (ORDERS, 1): Stored(2, 0)}
    assert [i.source for i in merger.next_batch(there, 100).items] == ["barrier-2"]
