"""Polling and assignment: a thin wrapper over kafka-python's group consumer.

It opens the client (waiting for an unreachable broker and for topic metadata), reports
assignments and revocations to the loop, polls, pauses and resumes partitions, seeks, and
commits offsets to Kafka for lag tools (the database keeps the real checkpoints). No I/O
in the constructor.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.retry import Backoff, retry
from ledger.logs import get_logger
from ledger.offsets import TopicPartition as TP

log = get_logger("ledger.consumer")
T = TypeVar("T")

# Tuned per docs/platform.md: bigger polls and fetches take kafka-python from ~80k to
# ~116k records/s; one DB transaction per batch keeps the write side batched too.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "max_poll_records": 5_000,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "fetch_max_wait_ms": 200,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    # never create a topic by subscribing to it: broker defaults would give the accounts
    # topic several partitions and break the total order of its barrier events
    "allow_auto_create_topics": False,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 3_000,
    "max_poll_interval_ms": 300_000,
}


JOIN_TIMEOUT_MS = 30_000  # a group join is never cut shorter than this (_settle_group)
# Leaving the group on close is best effort and must not hold up a stop: the broker answers
# one request per connection at a time, so a LeaveGroup sent while our JoinGroup is still
# held (waiting for slow members, up to max_poll_interval_ms) cannot be answered before it.
# Unanswered, the broker drops the member after session_timeout_ms instead.
CLOSE_TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class ConsumerConfig:
    bootstrap_servers: str
    group_id: str
    orders_topic: str
    accounts_topic: str
    poll_timeout_ms: int = 500
    max_backoff_s: float = 10.0
    max_batch: int = 5_000  # items per transaction
    marker_grace_s: float = 60.0  # a barrier waits this long for a missing marker
    kafka_overrides: tuple[tuple[str, Any], ...] = ()
    # SASL settings of the consumer principal (ledger/kafka/auth.py); () without SASL
    auth: tuple[tuple[str, Any], ...] = ()

    @property
    def topics(self) -> tuple[str, str]:
        return (self.orders_topic, self.accounts_topic)


def names(partitions: Any) -> list[str]:
    return sorted(f"{tp[0]}/{tp[1]}" for tp in partitions)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python: no types
    def __init__(self, client: PartitionClient) -> None:
        self.client = client

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.client.on_revoked([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.client.on_assigned([(tp.topic, tp.partition) for tp in assigned])


class PartitionClient:
    def __init__(
        self,
        config: ConsumerConfig,
        *,
        on_assigned: Callable[[list[TP]], None],
        on_revoked: Callable[[list[TP]], None],
        stopping: Callable[[], bool],
        wait: Callable[[float], object],
    ) -> None:
        self.config = config
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self._stopping = stopping
        self._wait = wait
        self._consumer: KafkaConsumer | None = None
        self._poll_backoff = Backoff(cap=config.max_backoff_s)
        self._worker = _Worker()
        self._interrupted: Future[None] = Future()  # done once the consumer must stop

    def interrupt(self) -> None:
        """Stop waiting for a group join: the consumer is stopping. Call it from a thread,
        not from a signal handler (it takes locks the interrupted code may hold)."""
        if not self._interrupted.done():
            self._interrupted.set_result(None)

    @property
    def kafka(self) -> KafkaConsumer:
        assert self._consumer is not None, "open() first"
        return self._consumer

    def open(self) -> bool:
        """Connect (waiting while no broker answers) and join the group once every topic's
        partitions are known. False if stopped meanwhile."""
        try:
            self._consumer = retry(
                self._open_once,
                on=(KafkaError,),
                what="kafka unreachable",
                wait=self._wait,
                stopping=self._stopping,
                backoff=Backoff(0.5, self.config.max_backoff_s),
                attempts_when_stopping=0,
            )
        except _Stopped:
            self._worker.close()
            return False
        except KafkaError:
            if self._stopping():
                self._worker.close()
                return False
            raise
        return True

    def _open_once(self) -> KafkaConsumer:
        options = {
            **CONSUMER_DEFAULTS,
            **dict(self.config.kafka_overrides),
            **dict(self.config.auth),
        }
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers,
            group_id=self.config.group_id,
            **options,
        )
        try:
            self._wait_for_topics(consumer)
        except BaseException:
            consumer.close(autocommit=False)  # a retry builds a new one
            raise
        consumer.subscribe(list(self.config.topics), listener=_Listener(self))
        return consumer

    def _wait_for_topics(self, consumer: KafkaConsumer) -> None:
        """Join the group only once every topic's partitions are known.

        Why: a group leader that assigns before the metadata arrives hands out no
        partitions. It would rebalance when the metadata came, but with static membership
        (``group_instance_id``) a member restarted in the meantime is handed that stale
        empty assignment by the broker without a rebalance, and kafka-python, not having
        computed it, never re-checks it: the partitions would stay unowned."""
        backoff = Backoff(0.1, self.config.max_backoff_s, jitter=0)
        while True:
            if self._stopping():
                raise _Stopped()
            # partitions_for_topic waits (unbounded) for a metadata response
            missing = self._unless_stopped(
                lambda: [t for t in self.config.topics if not consumer.partitions_for_topic(t)]
            )
            if not missing:
                return
            delay = backoff.next_delay()
            log.warning("waiting for topic metadata", topics=missing, retry_in_s=delay)
            self._wait(delay)

    def partition_count(self, topic: str) -> int:
        return len(self.kafka.partitions_for_topic(topic) or ())

    def poll(self, timeout_ms: int) -> dict[TP, list[Any]]:
        """One poll. A broker that vanished mid-poll (a restart) can surface as a
        KafkaError out of the client: nothing was applied, so wait and poll again; the
        client reconnects, and positions come from the database on reassignment."""
        try:
            if timeout_ms < JOIN_TIMEOUT_MS and not self._settle_group():
                return {}  # stopping: the join is abandoned, nothing was fetched
            polled = self.kafka.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            delay = self._poll_backoff.next_delay()
            log.warning(
                "kafka poll failed; retrying",
                attempt=self._poll_backoff.attempts,
                retry_in_s=round(delay, 2),
                error=str(exc)[:300],
            )
            self._wait(delay)
            return {}
        self._poll_backoff.reset()
        return {(tp.topic, tp.partition): records for tp, records in polled.items()}

    def rebalancing(self) -> bool:
        """True while the group must be (re)joined or a join is under way."""
        coordinator = getattr(self.kafka, "_coordinator", None)
        try:
            return bool(
                coordinator is not None and (coordinator.rejoining or coordinator.need_rejoin())
            )
        except Exception:  # noqa: BLE001 - a newer client: assume a settled group
            return False

    def _settle_group(self) -> bool:
        """Finish any pending group join with a long timeout before a short poll; False if
        the consumer was told to stop meanwhile (it then must not poll: the join may still
        be running on the worker thread).

        Why: kafka-python 3.0.12 drops the result of a join that a poll's timeout cut
        short when the join was caused by a metadata change (as right after start-up):
        the new assignment is never handed over. Short polls are what a consumer
        waiting for other processes needs, so joins are driven here, uncut. Uses the
        client's coordinator (pinned version; skipped if it ever changes).

        The join runs on a worker thread and this thread waits for it OR for a stop: a
        join waits for every member of the group (up to max_poll_interval_ms), and a
        consumer told to stop has no use for the assignment it would bring, so it
        abandons the wait (nothing is applied meanwhile; offsets live in the database)."""
        coordinator = getattr(self.kafka, "_coordinator", None)
        if coordinator is None or not hasattr(coordinator, "poll"):
            return not self._stopping()
        try:
            self._unless_stopped(lambda: coordinator.poll(timeout_ms=JOIN_TIMEOUT_MS))
        except _Stopped:
            log.info("stopping: not waiting for the group join in progress")
            return False
        return True

    def _unless_stopped(self, job: Callable[[], T]) -> T:
        """``job()``, run on the worker thread while this one waits for it or for a stop
        (then raises _Stopped, leaving the job to finish or fail on its own)."""
        if self._stopping() or self._interrupted.done():
            raise _Stopped()
        done = self._worker.submit(job)
        either: list[Future[Any]] = [done, self._interrupted]
        wait(either, return_when=FIRST_COMPLETED)
        if not done.done():
            raise _Stopped()
        return done.result()  # or raises what the job raised

    def seek(self, tp: TP, offset: int) -> None:
        """Seek, unless a later rebalance already took ``tp`` away (the loop applies
        rebalances after the fact; the next one it takes says so)."""
        try:
            self.kafka.seek(TopicPartition(*tp), offset)
        except ValueError:  # "Unassigned partition"
            log.info("not seeking a partition no longer assigned", partition=f"{tp[0]}/{tp[1]}")

    def assignment(self) -> list[TP]:
        return sorted((tp.topic, tp.partition) for tp in self.kafka.assignment())

    def positions(self) -> dict[str, Any]:
        """Where the client fetches each assigned partition from."""
        return {
            f"{tp.topic}/{tp.partition}": self.kafka.position(tp, timeout_ms=100)
            for tp in self.kafka.assignment()
        }

    def end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        """The partitions' end offsets, asked again while their leaders cannot answer (on
        a cluster that lost the majority of its brokers, until they are back): a guess
        would dead-letter a valid marker (loop.py ``_checked``)."""
        ends = retry(
            lambda: self.kafka.end_offsets([TopicPartition(*tp) for tp in tps]),
            on=(KafkaError,),
            what="kafka end offsets unavailable",
            wait=self._wait,
            stopping=self._stopping,
            backoff=Backoff(0.5, self.config.max_backoff_s),
        )
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    def highwater(self, tp: TP) -> int | None:
        highwater: int | None = self.kafka.highwater(TopicPartition(*tp))
        return highwater

    def commit(self, offsets: dict[TP, int]) -> None:
        """Best effort, for lag tools: the database holds the checkpoints."""
        try:
            self.kafka.commit(
                {
                    TopicPartition(*tp): OffsetAndMetadata(offset, "", -1)
                    for tp, offset in offsets.items()
                }
            )
        except Exception as exc:  # noqa: BLE001 - the database holds the truth
            log.warning(
                "kafka offset commit failed; the database has the offsets", error=str(exc)[:300]
            )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
            self._consumer = None
        self._worker.close()


class _Worker:
    """One daemon thread that runs the client's blocking waits (group joins, metadata) so
    the loop's thread can stop waiting for them. A daemon: an abandoned wait never holds
    up the process's exit."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], T]) -> Future[T]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kafka-waits", daemon=True)
            self._thread.start()
        done: Future[T] = Future()
        self._jobs.put((job, done))  # type: ignore[arg-type]
        return done

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                done.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                done.set_exception(exc)

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)  # ends the thread once any abandoned join returns
            self._thread = None


class _Stopped(Exception):
    """Stopped while waiting to open."""
