"""The Kafka broker from deploy/kafka is real: records round-trip through it in order, and a
consumer group's manual commit is stored by the broker's group coordinator."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bench.support import auth

N_RECORDS = 1000
DEADLINE_S = 30


def _produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **auth("publisher")
    )
    try:
        futures = [producer.send(topic, key=b"k", value=p) for p in payloads]
        producer.flush(timeout=DEADLINE_S)
        offsets = [f.get(timeout=DEADLINE_S).offset for f in futures]
    finally:
        producer.close()
    assert offsets == list(range(len(payloads)))


def _consume_all(consumer: KafkaConsumer, count: int) -> list[bytes]:
    received: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(received) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            received.extend(r.value for r in records)
    return received


def _subscribe_once_known(consumer: KafkaConsumer, topic: str) -> None:
    """Join the group only once this client's metadata has the topic's partitions, as the
    ledger's consumer does (consumers/client.py ``_wait_for_topics``): a group leader that
    assigns before the metadata arrives hands out no partitions ("No partition metadata
    for topic"), and the rebalance the metadata then calls for is lost by kafka-python
    3.0.12 when a short poll cuts that join short: the consumer would read nothing."""
    deadline = time.monotonic() + DEADLINE_S
    while not consumer.partitions_for_topic(topic):
        assert time.monotonic() < deadline, f"no metadata for {topic} after {DEADLINE_S}s"
        time.sleep(0.05)
    consumer.subscribe([topic])


def test_produce_consume_and_commit_round_trip(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    group = f"{topic}-group"
    payloads = [f"record-{i:05d}".encode() for i in range(N_RECORDS)]
    _produce(kafka_bootstrap, topic, payloads)

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **auth("consumer"),
    )
    try:
        _subscribe_once_known(consumer, topic)
        received = _consume_all(consumer, N_RECORDS)
        consumer.commit()
    finally:
        consumer.close()
    assert received == payloads

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, **auth("admin"))
    try:
        committed = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    assert committed[TopicPartition(topic, 0)].offset == N_RECORDS


def test_new_topic_has_every_partition_led(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=4)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, **auth("admin"))
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    partitions = described["partitions"]
    assert sorted(p["partition_index"] for p in partitions) == [0, 1, 2, 3]
    assert all(p["leader_id"] >= 0 for p in partitions)
