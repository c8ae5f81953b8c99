"""The Kafka consumer loop: poll a batch, decode it, hand it to the ledger service.

Commit order, and why it gives exactly-once effect:
1. ``service.ingest`` writes the batch's entries, event log, dead letters, parked events,
   reference state **and the next offsets per partition** in one database transaction.
2. Only then are the same offsets committed to Kafka, for lag tools. If that commit is
   lost, nothing is: on (re)assignment the consumer seeks to the offsets stored in the
   database, never Kafka's.
3. A crash before step 1 commits replays the batch; a crash after it replays nothing
   (or, if the database acknowledged late, replays events whose ids are known: no-ops).

Rebalances happen inside ``poll`` (kafka-python's eager protocol), between batches, so a
batch in hand always belongs to partitions this consumer owns; stored offsets only move
forward even if that ever failed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.decode import decode_records
from consumers.metrics import ConsumerMetrics
from ledger.logs import get_logger
from ledger.service import UNAVAILABLE, BatchReport, LedgerService

log = get_logger("ledger.consumer")

# Tuned per ../shared/FACTS.md: bigger polls and fetches take kafka-python from ~80k to
# ~116k records/s; one DB transaction per poll batch keeps the write side batched too.
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


@dataclass(frozen=True)
class ConsumerConfig:
    bootstrap_servers: str
    group_id: str
    topics: tuple[str, ...]
    poll_timeout_ms: int = 500
    max_backoff_s: float = 10.0
    kafka_overrides: tuple[tuple[str, Any], ...] = ()


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked", partitions=_names(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.loop.seek_to_stored(list(assigned))


def _names(partitions: Any) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)


class ConsumerLoop:
    """Runs until ``stop()``; then finishes the batch in hand, commits and returns."""

    def __init__(
        self,
        config: ConsumerConfig,
        service: LedgerService,
        metrics: ConsumerMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        dead_letter_sink: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.config = config
        self._dead_letter_sink = dead_letter_sink
        self.service = service
        self.metrics = metrics or ConsumerMetrics()
        self._stop = threading.Event()
        self._sleep = sleep
        self._consumer: KafkaConsumer | None = None
        self.batches = 0
        self._positions: dict[tuple[str, int], int] = {}
        self._poll_failures = 0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _open(self) -> KafkaConsumer:
        options = dict(CONSUMER_DEFAULTS)
        options.update(dict(self.config.kafka_overrides))
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers,
            group_id=self.config.group_id,
            **options,
        )
        try:
            self._wait_for_topics(consumer)
        except BaseException:
            consumer.close(autocommit=False)  # a retry of _open builds a new one
            raise
        consumer.subscribe(list(self.config.topics), listener=_SeekToStoredOffsets(self))
        return consumer

    def _wait_for_topics(self, consumer: KafkaConsumer) -> None:
        """Join the group only once every topic's partitions are known, with backoff.

        Why: a group leader that assigns before the metadata arrives hands out no
        partitions. It would rebalance when the metadata came, but with static membership
        (``group_instance_id``) a member restarted in the meantime is handed that stale
        empty assignment by the broker without a rebalance, and kafka-python, not having
        computed it, never re-checks it: the partitions would stay unowned."""
        delay = 0.1
        while not self.stopping:
            missing = [t for t in self.config.topics if not consumer.partitions_for_topic(t)]
            if not missing:
                return
            log.warning("waiting for topic metadata", topics=missing, retry_in_s=delay)
            self._sleep(delay)
            delay = min(delay * 2, self.config.max_backoff_s)

    def _open_when_reachable(self) -> KafkaConsumer | None:
        """Connect, waiting with capped backoff while no broker answers (a consumer may
        start before its cluster). None if stopped meanwhile."""
        delay = 0.5
        while not self.stopping:
            try:
                return self._open()
            except KafkaError as exc:
                log.warning("kafka unreachable; retrying", bootstrap=self.config.bootstrap_servers,
                            retry_in_s=delay, error=str(exc)[:300])
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.max_backoff_s)
        return None

    def seek_to_stored(self, assigned: list[TopicPartition]) -> None:
        """Position every newly assigned partition at the offset stored in the database."""
        assert self._consumer is not None
        stored = self._with_db_retry(lambda: self.service.stored_offsets(self.config.group_id))
        fresh = []
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                fresh.append(tp)
            else:
                self._consumer.seek(tp, offset)
                self._positions[(tp.topic, tp.partition)] = offset
        if fresh:
            self._consumer.seek_to_beginning(*fresh)
        log.info("partitions assigned", partitions=_names(assigned),
                 from_database={f"{k[0]}/{k[1]}": v for k, v in stored.items()
                                if TopicPartition(*k) in set(assigned)})

    def run(self) -> None:
        self._consumer = self._open_when_reachable()
        if self._consumer is None:
            return
        log.info("consumer started", group=self.config.group_id, topics=self.config.topics)
        try:
            while not self.stopping:
                polled = self._poll()
                if polled:
                    self._handle(polled)
                self._update_lag()
        finally:
            self._consumer.close(autocommit=False)
            log.info("consumer stopped", batches=self.batches)

    def _poll(self) -> dict[TopicPartition, list[Any]]:
        """One poll. A broker that vanished mid-poll (a restart) can surface as a
        KafkaError out of the client: nothing was applied, so wait and poll again; the
        client reconnects, and positions come from the database on reassignment."""
        assert self._consumer is not None
        try:
            polled = self._consumer.poll(timeout_ms=self.config.poll_timeout_ms)
        except KafkaError as exc:
            self._poll_failures += 1
            delay = min(0.2 * 2 ** min(self._poll_failures, 6), self.config.max_backoff_s)
            log.warning("kafka poll failed; retrying", attempt=self._poll_failures,
                        retry_in_s=round(delay, 2), error=str(exc)[:300])
            self._stop.wait(delay)
            return {}
        self._poll_failures = 0
        return polled

    def _handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        batch, offsets = decode_records(polled)
        report = self._with_db_retry(
            lambda: self.service.ingest_isolating(batch, group=self.config.group_id)
        )
        self.batches += 1
        self._positions.update(offsets)
        self._commit_to_kafka(offsets)
        if self._dead_letter_sink is not None and report.dead_letters:
            self._dead_letter_sink(report.dead_letters)  # after the commit: a mirror only
        elapsed = time.perf_counter() - started
        self.metrics.observe_batch(report, elapsed)
        log.info(
            "batch applied", size=len(batch), applied=report.applied, rejected=report.rejected,
            parked=report.parked, released=report.released, duplicates=report.duplicates,
            undecodable=report.undecodable, entries=report.entries,
            seconds=round(elapsed, 4), lag=self.metrics.total_lag(),
        )
        if report.reasons:
            log.info("rejections", reasons=report.reasons)

    def _commit_to_kafka(self, offsets: dict[tuple[str, int], int]) -> None:
        assert self._consumer is not None
        try:
            self._consumer.commit({
                TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in offsets.items()
            })
        except Exception as exc:  # noqa: BLE001 - the database holds the truth
            log.warning("kafka offset commit failed; the database has the offsets",
                        error=str(exc))

    def _update_lag(self) -> None:
        """Lag per owned partition: the high watermark minus the next offset to apply."""
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            position = self._positions.get((tp.topic, tp.partition))
            if high is not None and position is not None:
                self.metrics.set_lag(tp.topic, tp.partition, max(0, high - position))

    def _with_db_retry(self, action: Callable[[], Any]) -> Any:
        """Retry a database action on connection loss, deadlock or a racing writer, with
        capped exponential backoff. The transaction rolled back, so retrying is safe."""
        delay = 0.2
        attempt = 0
        while True:
            try:
                return action()
            except UNAVAILABLE as exc:
                attempt += 1
                if self.stopping and attempt > 3:
                    raise
                log.warning("database unavailable or conflicting; retrying",
                            attempt=attempt, retry_in_s=round(delay, 2),
                            error=str(exc).splitlines()[0][:300])
                self.metrics.db_retries.inc()
                self._sleep(delay + random.uniform(0, delay / 4))
                delay = min(delay * 2, self.config.max_backoff_s)


__all__ = ["CONSUMER_DEFAULTS", "BatchReport", "ConsumerConfig", "ConsumerLoop"]
