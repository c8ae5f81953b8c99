"""A consumer told to stop stops promptly, whatever its group is doing.

The case that made `test_consumers_joining_and_leaving` flaky under load: a rebalance
waits for every member of the group to join again (up to the rebalance timeout,
max_poll_interval_ms = 300 s), and a member busy elsewhere (here: one that stopped
polling) holds everyone's join. A `ledger consume` sent SIGTERM in the middle of such a
join used to sit out its whole 30 s join, then wait 30 s more for a LeaveGroup the
broker cannot answer while the join is held: 60 s+. It must exit (0) within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from bench.support import auth
from tests.support.kafka import ConsumerProcess, unique

PROMPT_S = 15.0  # the stop's bound: LeaveGroup's 5 s (consumers/client.py) and margin
DEADLINE_S = 60.0


def group_member(bootstrap: str, group: str, topics: list[str]) -> KafkaConsumer:
    """A raw member of ``group``, subscribed once its metadata knows the topics."""
    member = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **auth("consumer")
    )
    deadline = time.monotonic() + DEADLINE_S
    while not all(member.partitions_for_topic(t) for t in topics):
        assert time.monotonic() < deadline, f"no metadata for {topics}"
        time.sleep(0.05)
    member.subscribe(topics)
    return member


def count(consumer: ConsumerProcess, event: str) -> int:
    return sum(r.get("event") == event for r in consumer.log_lines())


def wait_for_count(consumer: ConsumerProcess, event: str, n: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while count(consumer, event) < n:
        consumer.alive()
        assert time.monotonic() < deadline, f"no {event!r} #{n}:\n{consumer.log_tail()}"
        time.sleep(0.05)


@pytest.fixture
def members() -> Iterator[list[KafkaConsumer]]:
    started: list[KafkaConsumer] = []
    yield started
    for member in started:
        member.close(autocommit=False, timeout_ms=2_000)


def test_sigterm_during_a_join_held_by_a_busy_member(
    kafka_bootstrap: str,
    new_topic,
    fresh_pg_url: str,
    tmp_path: Path,
    members: list[KafkaConsumer],
) -> None:
    topics = [new_topic(partitions=4), new_topic(partitions=1, kind="accounts")]
    group = unique("stop")
    consumer = ConsumerProcess(fresh_pg_url, kafka_bootstrap, group, topics, tmp_path / "c.log")
    consumer.start().wait_started()
    wait_for_count(consumer, "partitions assigned", 1)

    # a second member joins, gets its share, then stops polling (busy elsewhere)
    busy = group_member(kafka_bootstrap, group, topics)
    members.append(busy)
    deadline = time.monotonic() + DEADLINE_S
    while not busy.assignment():
        assert time.monotonic() < deadline, "the busy member never got partitions"
        busy.poll(timeout_ms=200)
    while not any(  # the consumer has logged that rebalance too: it kept only its share
        r.get("event") == "partitions assigned" and len(r["partitions"]) < 5
        for r in consumer.log_lines()
    ):
        consumer.alive()
        assert time.monotonic() < deadline, "the consumer never took its share"
        time.sleep(0.05)
    revoked = count(consumer, "partitions revoked")

    # a third member's JoinGroup starts a rebalance the busy member never answers: the
    # consumer's heartbeat learns of it, it revokes its partitions and its join waits
    joining = group_member(kafka_bootstrap, group, topics)
    members.append(joining)
    joining.poll(timeout_ms=200)
    wait_for_count(consumer, "partitions revoked", revoked + 1)

    started = time.monotonic()
    assert consumer.terminate(timeout=DEADLINE_S + 30) == 0
    took = time.monotonic() - started
    assert took < PROMPT_S, f"SIGTERM during a join took {took:.1f}s:\n{consumer.log_tail()}"
    assert count(consumer, "consumer stopped") == 1
