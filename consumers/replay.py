"""Replay the topics from offset 0 into a ledger: a fresh consumer group runs the normal
consumer loop until the database holds everything the topics held when it started.

The arrival order is a function of the topics' contents (docs/ordering.md), so the
result is the ledger any other complete consumption of the same topics gives: same heads.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from consumers.client import ConsumerConfig
from consumers.loop import ConsumerLoop
from ledger.config import Topics
from ledger.kafka.acls import REPLAY_GROUP_PREFIX
from ledger.service import LedgerService


def end_offsets(
    bootstrap: str, topics: Topics, auth: Mapping[str, Any] | None = None
) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **(auth or {}))
    try:
        tps = [
            TopicPartition(name, p)
            for name in (topics.orders, topics.accounts)
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        if not tps:
            raise ValueError(f"no such topics on {bootstrap}: {topics.orders}, {topics.accounts}")
        return {(tp.topic, tp.partition): o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def replay_topics(
    service: LedgerService,
    bootstrap: str,
    topics: Topics,
    *,
    progress: Callable[[int], object] | None = None,
    timeout_s: float = 24 * 3600,
    auth: Mapping[str, Any] | None = None,
) -> int:
    """Apply the topics through ``service`` up to their end offsets at the start; returns the
    number of records applied. Raises TimeoutError if it takes longer than ``timeout_s``.
    ``auth``: the consumer principal's SASL settings (ledger/kafka/auth.py)."""
    ends = end_offsets(bootstrap, topics, auth)
    target = sum(ends.values())
    group = f"{REPLAY_GROUP_PREFIX}{uuid.uuid4().hex[:12]}"
    config = ConsumerConfig(
        bootstrap, group, topics.orders, topics.accounts, auth=tuple((auth or {}).items())
    )
    loop = ConsumerLoop(config, service)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="replay", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    done = 0
    try:
        while True:
            stored = service.stored_offsets(group)
            applied = sum(min(stored.get(tp, 0), end) for tp, end in ends.items())
            if progress is not None and applied > done:
                progress(applied - done)
            done = applied
            if applied >= target:
                return applied
            if failure:
                raise failure[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay applied {applied} of {target} records")
            time.sleep(0.1)
    finally:
        loop.stop()
        thread.join(60)
