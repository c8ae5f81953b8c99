"""``ledger produce`` and the Publisher against the real broker.

Produces a JSON-lines file, consumes the topics back with kafka-python and checks that
every record decodes to the file's event, is keyed by its ordering key, sits in the right
topic, and that each buyer's events are in one partition in file order (and the barrier
events in file order in the single accounts partition).
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from bench.support import auth, publisher_auth
from ledger.config import Topics
from ledger.domain.events import Event
from ledger.jsonform import canonical_json
from ledger.kafka.publisher import Publisher
from ledger.kafka.topics import marker_offset, topic_for
from schemas.codec import decode
from schemas.examples import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
LEDGER = REPO / ".venv" / "bin" / "ledger"
BY_TYPE = {e.TYPE: e for e in EXAMPLES}


def workload(seed: int, buyers: int = 12) -> list[Event]:
    """Barriers and per-buyer causal chains (click, order, completion, refund), interleaved
    at random but keeping each buyer's order."""
    rng = random.Random(seed)
    chains = []
    for b in range(buyers):
        buyer = f"u-buyer-{b}"
        chain = [
            replace(BY_TYPE["click_recorded"], click_id=f"c-{b}", buyer_id=buyer),
            replace(BY_TYPE["order_placed"], order_id=f"o-{b}", buyer_id=buyer, click_id=f"c-{b}"),
            replace(BY_TYPE["order_completed"], order_id=f"o-{b}", buyer_id=buyer),
            replace(
                BY_TYPE["refund_issued"], refund_id=f"r-{b}", order_id=f"o-{b}", buyer_id=buyer
            ),
        ]
        chains.append(chain[: rng.randint(1, 4)])
    events: list[Event] = [BY_TYPE["plan_published"], BY_TYPE["sharer_enrolled"]]
    barriers = [BY_TYPE[t] for t in ("settlement_run", "payout_requested", "payout_settled")]
    while any(chains):
        if barriers and rng.random() < 0.1:
            events.append(barriers.pop(0))
            continue
        chain = rng.choice([c for c in chains if c])
        events.append(chain.pop(0))
    events += barriers + [BY_TYPE["payout_failed"]]
    return [replace(e, event_id=f"ev-{seed}-{i}") for i, e in enumerate(events)]


def consume_all(bootstrap: str, topics: list[str], expected: int, timeout: float = 30.0):
    """Every event record of ``topics`` from the beginning, once ``expected`` have arrived,
    and the barrier markers among them: (records, markers)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **auth("consumer")
    )
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records, markers = [], []
        deadline = time.monotonic() + timeout
        while len(records) < expected:
            assert time.monotonic() < deadline, f"got {len(records)} of {expected} records"
            for batch in consumer.poll(timeout_ms=200).values():
                for record in batch:
                    is_marker = marker_offset(record.headers) is not None
                    (markers if is_marker else records).append(record)
        # Nothing beyond what was expected.
        ends = consumer.end_offsets(partitions)
        assert sum(ends.values()) == expected + len(markers)
        return records, markers
    finally:
        consumer.close()


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java client would choose for ``key`` (murmur2)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def check_layout(records, events: list[Event], topics: Topics, orders_partitions: int) -> None:
    """The records are exactly ``events``, placed and ordered as docs/topics.md says."""
    position = {e.event_id: i for i, e in enumerate(events)}
    decoded = [(r, decode(r.value)) for r in records]
    assert sorted(position[e.event_id] for _, e in decoded) == list(range(len(events)))
    partitions_of_buyer: dict[str, set] = defaultdict(set)
    per_partition: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for record, event in decoded:
        assert event == events[position[event.event_id]]
        assert record.key == event.ordering_key().encode("utf-8")
        assert record.topic == topic_for(event.TYPE, topics)
        if record.topic == topics.orders:
            partitions_of_buyer[event.buyer_id].add(record.partition)
            assert record.partition == java_partition(record.key, orders_partitions)
        else:
            assert record.partition == 0
        per_partition[(record.topic, record.partition)].append(
            (record.offset, position[event.event_id])
        )
    assert all(len(parts) == 1 for parts in partitions_of_buyer.values()), partitions_of_buyer
    for rows in per_partition.values():
        file_order = [pos for _, pos in sorted(rows)]
        assert file_order == sorted(file_order)  # offset order is file order
    # Records are sent in file order: CreateTime follows.
    stamps = [r.timestamp for r, e in sorted(decoded, key=lambda d: position[d[1].event_id])]
    assert stamps == sorted(stamps)


def check_markers(records, markers, events: list[Event], topics: Topics) -> None:
    """Each buyer record sits behind markers covering exactly the barriers published
    before it (docs/ordering.md): the cut of every barrier is where the file puts it."""
    position = {e.event_id: i for i, e in enumerate(events)}
    barriers_before = []
    seen = 0
    for event in events:
        barriers_before.append(seen)
        seen += topic_for(event.TYPE, topics) == topics.accounts
    by_partition: dict[int, list] = defaultdict(list)
    for record in records + markers:
        if record.topic == topics.orders:
            by_partition[record.partition].append(record)
    assert markers, "barriers were published, so markers must be there"
    for rows in by_partition.values():
        covered = -1
        for record in sorted(rows, key=lambda r: r.offset):
            barrier = marker_offset(record.headers)
            if barrier is not None:
                covered = max(covered, barrier)
                continue
            assert covered + 1 == barriers_before[position[decode(record.value).event_id]]


def test_ledger_produce_publishes_a_file_in_order(kafka_bootstrap, new_topic, tmp_path):
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    events = workload(seed=4)
    lines = [canonical_json(e) for e in events]
    bad = {3: '{"type": "order_placed", "event_id": "x"}', 7: "not json", 11: lines[0][:-1]}
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = subprocess.run(
        [str(LEDGER), "produce", str(path), "--bootstrap", kafka_bootstrap,
         "--topic-orders", topics.orders, "--topic-accounts", topics.accounts],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"published {len(events)}, invalid 3" in result.stdout
    assert f"{path}:3: invalid_field:" in result.stderr
    assert f"{path}:7: malformed_json:" in result.stderr
    assert f"{path}:11: malformed_json:" in result.stderr

    records, markers = consume_all(kafka_bootstrap, [topics.orders, topics.accounts], len(events))
    check_layout(records, events, topics, orders_partitions=4)
    check_markers(records, markers, events, topics)
    assert len({r.partition for r in records if r.topic == topics.orders}) > 1  # spread out


def test_skip_invalid_exits_zero(kafka_bootstrap, new_topic, tmp_path):
    topics = Topics(
        orders=new_topic(partitions=2), accounts=new_topic(partitions=1, kind="accounts")
    )
    events = workload(seed=5, buyers=3)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([*map(canonical_json, events), "{}"]) + "\n", encoding="utf-8")
    result = subprocess.run(
        [str(LEDGER), "produce", str(path), "--bootstrap", kafka_bootstrap, "--skip-invalid",
         "--topic-orders", topics.orders, "--topic-accounts", topics.accounts],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"published {len(events)}, invalid 1" in result.stdout
    records, markers = consume_all(kafka_bootstrap, [topics.orders, topics.accounts], len(events))
    check_layout(records, events, topics, orders_partitions=2)
    check_markers(records, markers, events, topics)


def test_publisher_round_trip_many_events(kafka_bootstrap, new_topic):
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    events = [e for seed in range(20) for e in workload(seed=100 + seed, buyers=25)]
    with Publisher(kafka_bootstrap, topics, auth=publisher_auth()) as publisher:
        for event in events:
            publisher.publish(event)
    assert publisher.sent == publisher.acked == len(events)
    records, markers = consume_all(kafka_bootstrap, [topics.orders, topics.accounts], len(events))
    check_markers(records, markers, events, topics)
    position = {e.event_id: i for i, e in enumerate(events)}
    by_partition = defaultdict(list)
    for record in records:
        event = decode(record.value)
        assert event == events[position[event.event_id]]
        assert record.key == event.ordering_key().encode("utf-8")
        by_partition[(record.topic, record.partition)].append(
            (record.offset, position[event.event_id])
        )
    for rows in by_partition.values():
        order = [pos for _, pos in sorted(rows)]
        assert order == sorted(order)
