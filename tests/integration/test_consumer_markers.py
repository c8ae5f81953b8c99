"""Barrier markers on the real broker: a barrier whose publisher died before writing its
markers is repaired by the consumer; a marker for a barrier that does not exist yet is a
dead letter, not a partition held forever (docs/ordering.md, "Missing markers")."""

from __future__ import annotations

import threading

from kafka import KafkaProducer
from sqlalchemy import func, select

from consumers.client import ConsumerConfig
from consumers.loop import ConsumerLoop
from ledger.config import Topics
from ledger.domain.events import ClickRecorded, SharerEnrolled
from ledger.kafka.publisher import Publisher
from ledger.kafka.topics import marker_headers, record_key
from ledger.service import LedgerService
from ledger.store import tables as t
from ledger.store.opening import open_store
from schemas.codec import default_codec
from tests.support import reads as queries
from tests.support.kafka import auth, end_offsets, produce_raw, unique, wait_until_applied


def run_loop(loop: ConsumerLoop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return thread


def test_a_barrier_without_markers_is_repaired_after_the_grace(
    kafka_bootstrap, new_topic, fresh_pg_url
) -> None:
    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    codec = default_codec()
    clicks = [
        ClickRecorded(
            f"c{n}",
            1_000 + n,
            "t",
            click_id=f"k{n}",
            sharer_id="s1",
            buyer_id=f"b{n}",
            product_id="p",
        )
        for n in range(6)
    ]
    enrolled = SharerEnrolled("e1", 500, "t", sharer_id="s1")
    # a publisher that died between its barrier and the markers: no marker at all
    produce_raw(
        kafka_bootstrap,
        [(topics.orders, record_key(c), codec.encode(c)) for c in clicks]
        + [(topics.accounts, record_key(enrolled), codec.encode(enrolled))],
    )
    store = open_store(fresh_pg_url)
    group = unique("repair")
    consumer = auth("consumer")  # the consumer writes its repairs as itself
    repair = Publisher(kafka_bootstrap, topics, auth={"orders": consumer, "accounts": consumer})

    def seal(barrier: int, partitions: list[int]) -> None:
        repair.seal(barrier, partitions)
        repair.flush()

    loop = ConsumerLoop(
        ConsumerConfig(
            kafka_bootstrap,
            group,
            topics.orders,
            topics.accounts,
            marker_grace_s=1.0,
            auth=tuple(consumer.items()),
        ),
        LedgerService(store),
        seal=seal,
    )
    thread = run_loop(loop)
    try:
        ends = end_offsets(kafka_bootstrap, [topics.orders])
        wait_until_applied(store, group, ends, 60)  # buyer events never wait
        wait_until_applied(store, group, {(topics.accounts, 0): 1}, 60)  # the barrier, repaired
    finally:
        loop.stop()
        thread.join(30)
        repair.close()
    assert repair.markers == 2  # one per orders partition, both read to their end
    progress = LedgerService(store).progress(group)
    assert all(progress[(topics.orders, p)].marker == 0 for p in range(2))
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.sharers)).scalar_one() == 1
    store.dispose()


def test_a_marker_ahead_of_the_accounts_topic_is_a_dead_letter(
    kafka_bootstrap, new_topic, fresh_pg_url
) -> None:
    topics = Topics(orders=new_topic(1), accounts=new_topic(1, kind="accounts"))
    codec = default_codec()
    click = ClickRecorded(
        "c1", 1_000, "t", click_id="k1", sharer_id="s1", buyer_id="b1", product_id="p"
    )
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        **auth("publisher"),
    )
    producer.send(topics.orders, value=b"", partition=0, headers=marker_headers(41))
    producer.send(topics.orders, key=record_key(click), value=codec.encode(click), partition=0)
    producer.flush()
    producer.close()
    store = open_store(fresh_pg_url)
    group = unique("ahead")
    loop = ConsumerLoop(
        ConsumerConfig(
            kafka_bootstrap,
            group,
            topics.orders,
            topics.accounts,
            auth=tuple(auth("consumer").items()),
        ),
        LedgerService(store),
    )
    thread = run_loop(loop)
    try:
        wait_until_applied(store, group, end_offsets(kafka_bootstrap, [topics.orders]), 60)
    finally:
        loop.stop()
        thread.join(30)
    assert [(d["source"], d["reason"]) for d in queries.dead_letters(store)] == [
        (f"{topics.orders}/0@0", "marker_ahead_of_accounts")
    ]
    assert LedgerService(store).progress(group)[(topics.orders, 0)].marker == -1
    store.dispose()
