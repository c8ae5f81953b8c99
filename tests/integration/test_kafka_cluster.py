"""The ledger on a replicated Kafka cluster (three brokers, replication factor 3,
min.insync.replicas=2; deploy/kafka/start-cluster.sh) while brokers are SIGKILLed under load.

Each test publishes a barrier-dense stream at a steady rate through the ledger's Publisher
(acks=all, idempotence) while two `ledger consume` processes apply it, and kills brokers in
the middle:

- the leader of the partition being written and read (the accounts partition every event's
  place depends on), then, while it is still down, the new leader: two of three brokers
  gone. Publishing must then stop being acknowledged (shown with a probe: a flush does not
  return) rather than acknowledge a write only one broker has; both are brought back by
  the deploy script and everything resumes;
- one broker down for a while (LEDGER_CLUSTER_DOWN_S, 15 s in the suite; the full minute:
  ``LEDGER_CLUSTER_DOWN_S=60 bash deploy/test.sh tests/integration/test_kafka_cluster.py``),
  then back, catching up until every replica is in sync again.

Every time: nothing lost, nothing doubled (every event once in the event log), every event
the publisher saw acknowledged is applied, and the ledger equals what `ledger ingest` makes
of the same events (balances, dead letters and their reasons, waiting events); the hash
chains verify. The module starts the cluster through the deploy script and stops it
afterwards (if it was not running before). Ports: KAFKA_CLUSTER_PORT and
KAFKA_CLUSTER_CONTROLLER_PORT (deploy/kafka/common.sh).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bench.support import publisher_auth
from ledger.cli import main
from ledger.domain.events import ClickRecorded, Event, OrderCompleted
from ledger.jsonform import canonical_json
from ledger.kafka.publisher import Publisher, PublishError
from ledger.simulate import generate_dense
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.support.cluster import Cluster, PacedPublisher, started_cluster
from tests.support.kafka import (
    LEDGER_BIN,
    ConsumerProcess,
    Figures,
    applied_count,
    delete_topics,
    end_offsets,
    figures,
    ingested_figures,
    names,
    new_topics,
    unique,
    wait_until_applied,
)

SEED = 20261207
ORDERS = 300  # ~2,000 events, a few hundred of them barriers
DOWN_S = float(os.environ.get("LEDGER_CLUSTER_DOWN_S", "15"))
CONSUMERS = int(os.environ.get("LEDGER_CLUSTER_CONSUMERS", "1"))  # `ledger consume` processes
PROGRESS = 200  # events acknowledged and applied that show the work goes on


@pytest.fixture(scope="module")
def cluster(kafka_auth) -> Iterator[Cluster]:
    with started_cluster() as started:
        yield started


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Event], Figures]:
    """The events in publish order and what `ledger ingest` makes of them."""
    events = with_waiting(generate_dense(SEED, orders=ORDERS))
    want = ingested_figures(events, tmp_path_factory.mktemp("cluster-reference"))
    assert want.dead_letters and want.parked, "the stream must exercise rejections and waits"
    return events, want


def with_waiting(events: list[Event], every: int = 200) -> list[Event]:
    """``events`` with, every ``every`` events, a completion of an order never placed (by
    the buyer of the event before it): events that wait for ever (parked)."""
    out: list[Event] = []
    for n, event in enumerate(events, 1):
        out.append(event)
        buyer = getattr(event, "buyer_id", "")
        if n % every == 0 and buyer:
            out.append(
                OrderCompleted(
                    f"ev-wait-{n}", event.occurred_at, "t", order_id=f"never-{n}", buyer_id=buyer
                )
            )
    return out


@dataclass
class Run:
    """A stream being published and consumed on the cluster."""

    cluster: Cluster
    store: Store
    events: list[Event]
    publisher: PacedPublisher
    consumers: list[ConsumerProcess]
    topics: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return self.consumers[0].group

    def applied(self) -> int:
        return applied_count(self.store, self.group)

    def alive(self) -> None:
        self.publisher.alive()
        for consumer in self.consumers:
            consumer.alive()

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 120) -> float:
        """Poll ``done`` (checking every process is alive) until true; the seconds taken."""
        started = time.monotonic()
        while not done():
            self.alive()
            assert time.monotonic() - started < timeout, f"no {what} after {timeout}s"
            time.sleep(0.05)
        return time.monotonic() - started

    def wait_progress(self, label: str, since_kill: float) -> None:
        """Both publishing (acknowledgements) and consuming (applied records) move on by
        PROGRESS events; notes how long each took after the kill at ``since_kill``."""
        acked, applied = len(self.publisher.acked), self.applied()
        self.wait(
            f"publishing after {label}",
            lambda: len(self.publisher.acked) >= min(acked + PROGRESS, len(self.events)),
        )
        self.timings[f"{label}: publishing moved on (s)"] = time.monotonic() - since_kill
        self.wait(f"consuming after {label}", lambda: self.applied() >= applied + PROGRESS)
        self.timings[f"{label}: consuming moved on (s)"] = time.monotonic() - since_kill

    def finish(self) -> None:
        """The publisher done, everything produced applied, the consumers stopped."""
        try:
            self.publisher.join(240)
            ends = end_offsets(self.cluster.bootstrap, self.topics)
            wait_until_applied(self.store, self.group, ends, 240, self.alive)
        finally:
            for consumer in self.consumers:
                assert consumer.terminate() == 0

    def check(self, want: Figures) -> None:
        """Nothing lost, nothing doubled, the acknowledged all applied, = `ledger ingest`."""
        with self.store.read() as conn:
            logged = conn.execute(select(t.events.c.event_id)).scalars().all()
        assert len(logged) == len(set(logged)) == len(self.events), "lost or doubled events"
        assert set(logged) == {e.event_id for e in self.events}
        acked = self.publisher.acked
        assert len(acked) == len(self.events) and set(acked) <= set(logged)
        got = figures(self.store)
        assert got.balances == want.balances
        assert got.dead_letters == want.dead_letters
        assert got.parked == want.parked
        assert got.events == want.events
        report = verify(self.store)
        assert report.ok, report.problem


@pytest.fixture
def start_run(
    cluster: Cluster, stream: tuple[list[Event], Figures], fresh_pg_url: str, tmp_path: Path
) -> Iterator[Callable[[float], Run]]:
    events, _ = stream
    runs: list[Run] = []

    def start(seconds: float) -> Run:
        """Publish the stream over about ``seconds`` while two consumers apply it."""
        topics = new_topics("cluster")
        cluster.create_topics(topics)
        group = unique("cluster")
        consumers = [
            ConsumerProcess(
                fresh_pg_url,
                cluster.bootstrap,
                group,
                names(topics),
                tmp_path / f"consumer-{k}.log",
                ["--max-poll-records", "200"],
            ).start()
            for k in range(CONSUMERS)
        ]
        publisher = PacedPublisher(cluster.bootstrap, topics, events, len(events) / seconds)
        store = open_store(fresh_pg_url)
        run = Run(cluster, store, events, publisher.start(), consumers, names(topics))
        runs.append(run)
        return run

    yield start
    for run in runs:
        for consumer in run.consumers:
            consumer.terminate()
        run.store.dispose()
        # how long things took (reported, never asserted: docs/operations.md has figures)
        timings = "".join(f"\n  {what}: {seconds:.1f}" for what, seconds in run.timings.items())
        print(timings)  # noqa: T201 - reported with -s for docs/operations.md, never asserted


def test_the_leader_and_then_another_broker_killed_under_load(
    cluster: Cluster,
    stream: tuple[list[Event], Figures],
    start_run: Callable[[float], Run],
    tmp_path: Path,
) -> None:
    events, want = stream
    probe_topics = new_topics("probe")
    cluster.create_topics(probe_topics, orders_partitions=1)
    run = start_run(45)
    assert run.publisher.config["acks"] == "all" and run.publisher.config["enable_idempotence"]
    accounts = run.topics[1]
    run.wait("a tenth applied", lambda: run.applied() >= len(events) // 10)

    # 1. the leader of the accounts partition (written by every barrier, read before every
    #    buyer event): the other two take over, nothing stops for long
    first = cluster.leader(accounts)
    killed = cluster.kill(first)
    assert len(run.publisher.acked) < len(events), "the kill was not mid-stream"
    # `ledger produce` right away too, while the dead broker is still in the metadata
    clicks = [
        ClickRecorded(
            f"cli-{n}", n, "t", click_id=f"k{n}", sharer_id="s", buyer_id="b", product_id="p"
        )
        for n in range(5)
    ]
    cli_file = tmp_path / "clicks.jsonl"
    cli_file.write_text("".join(canonical_json(e) + "\n" for e in clicks), encoding="utf-8")
    cli = subprocess.Popen(
        [str(LEDGER_BIN), "produce", str(cli_file), "--bootstrap", cluster.bootstrap]
        + ["--topic-orders", probe_topics.orders, "--topic-accounts", probe_topics.accounts],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run.wait_progress(f"node {first} (leader) killed", killed)
    output, _ = cli.communicate(timeout=120)
    assert cli.returncode == 0 and "published 5, invalid 0" in output, output[-3000:]

    # 2. then the new leader: one broker of three left, below min.insync.replicas
    second = cluster.leader(accounts, not_=[first])
    killed = cluster.kill(second)
    probe = Publisher(cluster.bootstrap, probe_topics, auth=publisher_auth(), max_block_ms=5000)
    probe.publish(
        ClickRecorded("probe", 1, "t", click_id="k", sharer_id="s", buyer_id="b", product_id="p")
    )
    with pytest.raises(PublishError, match="flush did not complete"):
        probe.flush(timeout=3)  # acks=all: not acknowledged by one broker alone
    assert probe.acked == 0
    acked_while_down = len(run.publisher.acked)

    # 3. both back through the deploy script; the probe and the stream go through
    started = time.monotonic()
    cluster.start()
    run.timings["two nodes restarted by start-cluster.sh (s)"] = time.monotonic() - started
    assert sorted(cluster.running()) == [1, 2, 3]
    probe.flush(timeout=120)
    assert probe.acked == 1
    probe.close()
    run.wait_progress(f"nodes {first}, {second} back", killed)
    assert len(run.publisher.acked) > acked_while_down
    run.finish()
    run.check(want)
    cluster.wait_fully_replicated(run.topics)


def test_a_broker_down_for_a_while_under_load(
    cluster: Cluster, stream: tuple[list[Event], Figures], start_run: Callable[[float], Run]
) -> None:
    events, want = stream
    run = start_run(DOWN_S + 25)
    run.wait("a tenth applied", lambda: run.applied() >= len(events) // 10)
    victim = cluster.leader(run.topics[1])
    killed = cluster.kill(victim)
    assert len(run.publisher.acked) < len(events), "the kill was not mid-stream"
    run.wait_progress(f"node {victim} killed", killed)  # the load goes on without it
    # it stays down DOWN_S seconds in all (a duration, not a synchronisation: the
    # processes are checked all along)
    run.wait(f"{DOWN_S}s down", lambda: time.monotonic() - killed >= DOWN_S, DOWN_S + 60)
    assert victim not in cluster.running()
    run.cluster.start()
    started = time.monotonic()
    run.finish()
    # the broker that was down caught up: every replica of the run's partitions in sync
    cluster.wait_fully_replicated(run.topics)
    run.timings[f"node {victim} back in sync, all records applied (s)"] = time.monotonic() - started
    run.check(want)


def test_create_topics_takes_the_cluster_replication_settings(cluster: Cluster) -> None:
    topics = new_topics("ct")
    env = {
        "LEDGER_TOPIC_ORDERS": topics.orders,
        "LEDGER_TOPIC_ACCOUNTS": topics.accounts,
        "LEDGER_TOPIC_DEAD_LETTERS": topics.dead_letters,
    }
    args = ["create-topics", "--bootstrap", cluster.bootstrap, "--orders-partitions", "2"]
    created = CliRunner().invoke(main, args, env=env)
    try:
        assert created.exit_code == 0, created.output
        assert created.output.count("replication factor 3)") == 3, created.output
        layout = cluster.partitions(env.values())
        assert len(layout) == 4  # 2 orders partitions, 1 accounts, 1 dead letters
        assert all(len(p["replicas"]) == 3 for p in layout.values())
    finally:
        delete_topics(cluster.bootstrap, env.values())
