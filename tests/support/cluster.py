"""The replicated Kafka cluster of deploy/kafka/start-cluster.sh, driven from tests: start
and stop it through the deploy scripts, find which broker leads what, SIGKILL a broker
and bring it back; and a publisher that keeps publishing through all of that.

Brokers are named by their node id (1..3), as Kafka's metadata names them; their pids
come from the deploy scripts' own pid files (``kafka_cluster_node`` + ``kafka_pid``).
Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic

from bench.support import auth, publisher_auth
from ledger.config import Topics
from ledger.domain.events import Event
from ledger.kafka.publisher import Publisher, PublishError

from .kafka import POLL_S, REPO

SIZE = 3


def run_deploy(script: str, timeout: float = 240) -> str:
    """Run deploy/kafka/<script> (the tests' scratch ACLs included); its stdout."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "KAFKA_SCRATCH_ACLS": "1"},
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def node_pid(node: int) -> int | None:
    """The live pid of cluster node ``node``, None if it is not running."""
    done = subprocess.run(
        ["bash", "-c", f"source deploy/kafka/common.sh && kafka_cluster_node {node} && kafka_pid"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    return int(done.stdout) if done.stdout.strip() else None


@contextlib.contextmanager
def started_cluster() -> Iterator[Cluster]:
    """The cluster started through the deploy script for a test module; stopped after it
    unless it was running before (then left as found, whole)."""
    already = Cluster("").running()
    out = run_deploy("start-cluster.sh")
    bootstrap = out.strip().splitlines()[-1].removeprefix("bootstrap servers: ")
    try:
        yield Cluster(bootstrap)
    finally:
        run_deploy("start-cluster.sh" if already else "stop-cluster.sh")


@dataclass
class Cluster:
    bootstrap: str  # every node, comma separated

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=10_000, **auth("admin")
        )

    def brokers(self) -> list[int]:
        """The brokers the controller has not fenced (a killed one is fenced
        ``broker.session.timeout.ms`` after the kill)."""
        admin = self.admin()
        try:
            listed = admin.describe_cluster()["brokers"]
            return sorted(b["broker_id"] for b in listed if not b.get("is_fenced"))
        finally:
            admin.close()

    def running(self) -> list[int]:
        return [n for n in range(1, SIZE + 1) if node_pid(n) is not None]

    def kill(self, node: int) -> float:
        """SIGKILL node ``node`` (no clean shutdown of any kind); returns once the process
        is gone, with the time of the kill (time.monotonic())."""
        pid = node_pid(node)
        assert pid is not None, f"node {node} is not running"
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and _alive(pid):
            assert time.monotonic() < deadline, f"node {node} (pid {pid}) survived SIGKILL"
            time.sleep(POLL_S)
        return killed_at

    def start(self) -> str:
        """deploy/kafka/start-cluster.sh: starts every node that is not running."""
        return run_deploy("start-cluster.sh")

    def create_topics(self, topics: Topics, orders_partitions: int = 4) -> None:
        """The orders, accounts and dead-letter topics with the cluster's replication
        settings (no replication factor given, as `ledger create-topics` does)."""
        admin = self.admin()
        try:
            wanted = {topics.orders: orders_partitions, topics.accounts: 1, topics.dead_letters: 1}
            admin.create_topics([NewTopic(name, n, -1) for name, n in wanted.items()])
            admin.wait_for_topics(list(wanted), timeout_ms=60_000)
        finally:
            admin.close()

    def partitions(self, names: Iterable[str]) -> dict[tuple[str, int], dict[str, Any]]:
        """(topic, partition) -> {"leader": node, "replicas": [...], "isr": [...]}."""
        admin = self.admin()
        try:
            return {
                (t["name"], p["partition_index"]): {
                    "leader": p["leader_id"],
                    "replicas": list(p["replica_nodes"]),
                    "isr": list(p["isr_nodes"]),
                }
                for t in admin.describe_topics(list(names))
                for p in t["partitions"]
            }
        finally:
            admin.close()

    def leader(self, topic: str, partition: int = 0, *, not_: Sequence[int] = ()) -> int:
        """The node leading ``topic``/``partition``, once it is a live node not in
        ``not_`` (after a kill, the controller moves leadership within seconds)."""
        found: int = self.wait_for(
            lambda: (
                leader
                if (leader := self.partitions([topic])[(topic, partition)]["leader"]) >= 1
                and leader not in not_
                else None
            ),
            f"a leader of {topic}/{partition} other than {list(not_)}",
        )
        return found

    def wait_fully_replicated(self, names: Iterable[str], timeout: float = 120) -> None:
        """Until every partition of ``names`` has all its replicas in sync again (a broker
        that was down has caught up)."""
        names = list(names)
        self.wait_for(
            lambda: (
                all(
                    sorted(p["isr"]) == sorted(p["replicas"]) and len(p["replicas"]) == SIZE
                    for p in self.partitions(names).values()
                )
                or None
            ),
            f"every replica of {names} in sync",
            timeout,
        )

    @staticmethod
    def wait_for(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                if (value := probe()) is not None:
                    return value
            except Exception as exc:  # noqa: BLE001 - metadata from a broker going away
                last = exc
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout}s (last error: {last!r})")
            time.sleep(POLL_S * 4)


def _alive(pid: int) -> bool:
    """False for a process gone or a zombie (killed, not yet reaped by init)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class PacedPublisher:
    """Publishes ``events`` in order, ``rate`` per second, through the ledger's Publisher
    (acks=all, idempotence) in a thread: in chunks, each acknowledged once ``flush()``
    returns. A chunk whose flush fails is published again, whole, by a new Publisher (the
    event ids make a second copy a no-op in the ledger), as a client that got an error
    retries. ``acked`` lists the event ids acknowledged so far, in order."""

    bootstrap: str
    topics: Topics
    events: Sequence[Event]
    rate: float
    chunk: int = 50
    acked: list[str] = field(default_factory=list)
    retried_chunks: int = 0
    error: BaseException | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="paced-publisher")
        self._stop = threading.Event()

    def start(self) -> PacedPublisher:
        self._first = self._publisher()  # its config is readable at once
        self._thread.start()
        return self

    def _publisher(self) -> Publisher:
        # no deadline on its acknowledgements (ack_timeout None), as before the 30 s
        # default: with a deadline, a chunk given up just as the brokers came back was
        # sent again on a new producer, and the stream ran out before the cluster
        # tests' "consuming moved on by 200" check (uncapped) could see it move
        publisher = Publisher(self.bootstrap, self.topics, auth=publisher_auth(), ack_timeout=None)
        self.config = publisher.config
        return publisher

    def _run(self) -> None:
        try:
            publisher = self._first
            started = time.monotonic()
            for first in range(0, len(self.events), self.chunk):
                chunk = self.events[first : first + self.chunk]
                # pace: chunk k goes out no earlier than k*chunk/rate seconds in
                due = started + first / self.rate
                while (wait := due - time.monotonic()) > 0 and not self._stop.is_set():
                    time.sleep(min(wait, POLL_S))
                while True:
                    try:
                        for event in chunk:
                            publisher.publish(event)
                        publisher.flush()
                        break
                    except PublishError:
                        if self._stop.is_set():
                            raise
                        publisher.close(timeout=0)
                        publisher = self._publisher()
                        self.retried_chunks += 1
                self.acked.extend(e.event_id for e in chunk)
            publisher.close()
        except BaseException as exc:  # noqa: BLE001 - surfaced by alive()/join()
            self.error = exc

    def alive(self) -> None:
        if self.error is not None:
            raise AssertionError(f"publisher failed: {self.error!r}") from self.error

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self.alive()
        if self._thread.is_alive():
            self._stop.set()
            raise AssertionError(f"publisher not done after {timeout}s ({len(self.acked)} acked)")
