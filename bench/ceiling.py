"""The fixture topics and the ceiling: what kafka-python alone reads from them.

``ensure_fixture`` publishes a stream through ``Publisher`` (barrier markers included) into
topics named after it, reusing them while they hold exactly the expected records.
``raw_consume`` reads them back with the ledger consumer's settings and no database,
with or without Avro decoding. ``stream_events`` hands the decoded events to the baselines
(accounts topic first, then the orders partitions as polled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bench.support import (
    CONSUMER_DEFAULTS,
    RESULTS,
    DecodeError,
    Event,
    Publisher,
    Topics,
    auth,
    default_codec,
    end_offsets,
    publisher_auth,
    wait_for_partitions,
)

# the group-membership settings mean nothing to a consumer that assigns partitions itself
_GROUP_ONLY = ("session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms")


def recreate_topics(bootstrap: str, topics: Topics, partitions: int) -> None:
    names = [topics.orders, topics.accounts]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        doomed = [n for n in names if n in set(admin.list_topics())]
        if doomed:
            admin.delete_topics(doomed)
            deadline = time.monotonic() + 60
            while set(doomed) & set(admin.list_topics()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"topics {doomed} were not deleted within 60 s")
                time.sleep(0.2)
        admin.create_topics(
            [NewTopic(topics.orders, partitions, 1), NewTopic(topics.accounts, 1, 1)]
        )
    finally:
        admin.close()
    wait_for_partitions(bootstrap, {topics.orders: partitions, topics.accounts: 1})


def ensure_fixture(
    bootstrap: str, topics: Topics, partitions: int, events: Iterable[Event]
) -> dict[str, Any]:
    """Create and fill the topics unless they already hold these events (and markers).
    ``events`` may be a generator: it is read once, as it is published."""
    sidecar = RESULTS / ".fixtures" / f"{topics.orders}.json"
    names = [topics.orders, topics.accounts]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    if set(names) <= existing and sidecar.exists():
        want = json.loads(sidecar.read_text())
        if sum(end_offsets(bootstrap, names).values()) == want["records"]:
            return {"reused": True, "load_seconds": 0.0, **want}
    recreate_topics(bootstrap, topics, partitions)
    started = time.perf_counter()
    count = 0
    with Publisher(bootstrap, topics, auth=publisher_auth()) as publisher:
        for event in events:
            publisher.publish(event)
            count += 1
    seconds = time.perf_counter() - started
    facts = {
        "events": count,
        "markers": publisher.markers,
        "records": count + publisher.markers,
    }
    loaded = sum(end_offsets(bootstrap, names).values())
    if loaded != facts["records"]:
        raise SystemExit(f"loaded {loaded} records, expected {facts['records']}")
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps(facts))
    return {
        "reused": False,
        "load_seconds": round(seconds, 2),
        "publish_events_per_s": round(count / seconds),
        **facts,
    }


def _assigned(bootstrap: str, topics: Topics) -> tuple[KafkaConsumer, list[TopicPartition]]:
    options = {k: v for k, v in CONSUMER_DEFAULTS.items() if k not in _GROUP_ONLY}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **options, **auth("consumer"))
    tps = [
        TopicPartition(topic, p)
        for topic in (topics.accounts, topics.orders)
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    return consumer, tps


def raw_consume(bootstrap: str, topics: Topics, records: int, decode: bool) -> dict[str, Any]:
    """Every record of both topics through kafka-python (and the Avro codec if ``decode``),
    tuned like the ledger consumer, nothing else: the ceiling."""
    consumer, tps = _assigned(bootstrap, topics)
    codec = default_codec()
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen = bad = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while seen < records:
            for batch in consumer.poll(timeout_ms=1000).values():
                if decode:
                    for record in batch:
                        if record.headers:  # a barrier marker: nothing to decode
                            continue
                        try:
                            codec.decode(record.value)
                        except DecodeError:
                            bad += 1
                seen += len(batch)
            if time.monotonic() > deadline:
                raise SystemExit(f"raw consume stuck at {seen}/{records}")
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return {"records": seen, "undecodable": bad, "seconds": round(seconds, 3)}


def stream_events(bootstrap: str, topics: Topics) -> Iterator[Event]:
    """The decoded events of both topics: the accounts topic (plans, enrollments) to its
    end first, then the orders partitions as polled (each partition in order). Markers
    are skipped; the caller stops whenever it has had enough."""
    consumer, tps = _assigned(bootstrap, topics)
    codec = default_codec()
    try:
        for part in (
            [tp for tp in tps if tp.topic == topics.accounts],
            [tp for tp in tps if tp.topic == topics.orders],
        ):
            ends = consumer.end_offsets(part)
            consumer.assign(part)
            consumer.seek_to_beginning(*part)
            left = {tp: end for tp, end in ends.items() if end > 0}
            while left:
                for tp, batch in consumer.poll(timeout_ms=1000).items():
                    for record in batch:
                        if not record.headers:
                            yield codec.decode(record.value)
                    if batch and batch[-1].offset + 1 >= ends[tp]:
                        left.pop(tp, None)
    finally:
        consumer.close()
