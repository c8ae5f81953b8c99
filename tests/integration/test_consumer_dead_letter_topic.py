"""Dead letters are also mirrored to a Kafka topic when asked (`--mirror-dead-letters`),
after their batch committed: one record per dead letter, reason in a header."""

from __future__ import annotations

import json
import threading

from kafka import KafkaConsumer

from consumers.dead_letter_topic import DeadLetterTopic
from consumers.loop import ConsumerConfig, ConsumerLoop
from ledger.config import Topics
from ledger.domain.events import ClickRecorded, PayoutRequested
from ledger.service import LedgerService
from ledger.store.opening import open_store
from schemas.codec import default_codec
from tests.support import reads as queries
from tests.support.kafka import (
    auth,
    end_offsets,
    produce_raw,
    seal,
    unique,
    wait_until_applied,
)


def test_every_dead_letter_reaches_the_topic(kafka_bootstrap, new_topic, fresh_pg_url) -> None:
    topics = Topics(
        orders=new_topic(2),
        accounts=new_topic(1, kind="accounts"),
        dead_letters=new_topic(1, kind="dead-letters"),
    )
    codec = default_codec()
    good = [
        ClickRecorded(
            f"c{n}",
            1_000 + n,
            "t",
            click_id=f"k{n}",
            sharer_id="s",
            buyer_id=f"b{n % 3}",
            product_id="p",
        )
        for n in range(20)
    ]
    reused = ClickRecorded(
        "c-dup", 2_000, "t", click_id="k1", sharer_id="s", buyer_id="b1", product_id="p"
    )  # a click id reused under another event id
    no_plan = PayoutRequested(
        "p1", 3_000, "t", payout_id="P1", sharer_id="s", amount=5, currency="CNY"
    )
    records = [(topics.orders, e.buyer_id.encode(), codec.encode(e)) for e in good + [reused]]
    records += [(topics.orders, b"junk", b"\xc3\x02not avro"), (topics.orders, b"x", None)]
    records.append((topics.accounts, b"s", codec.encode(no_plan)))
    produce_raw(kafka_bootstrap, records)
    seal(kafka_bootstrap, topics)

    store = open_store(fresh_pg_url)
    group = unique("dlq")
    consumer = auth("consumer")
    mirror = DeadLetterTopic(kafka_bootstrap, topics.dead_letters, **consumer)
    loop = ConsumerLoop(
        ConsumerConfig(
            kafka_bootstrap, group, topics.orders, topics.accounts, auth=tuple(consumer.items())
        ),
        LedgerService(store),
        dead_letter_sink=mirror,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until_applied(
            store, group, end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])
        )
    finally:
        loop.stop()
        thread.join(30)
        mirror.close()
    assert mirror.failures == 0

    stored = {(d["source"], d["reason"]) for d in queries.dead_letters(store)}
    assert {reason for _, reason in stored} == {
        "duplicate_click_id",
        "bad_marker",
        "empty_record",
        "no_plan_in_force",
    }
    reader = KafkaConsumer(
        topics.dead_letters,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **auth("admin"),  # no ledger principal reads it: a watcher needs its own READ ACL
    )
    mirrored = []
    for record in reader:
        body = json.loads(record.value)
        assert dict(record.headers)["reason"].decode() == body["reason"]
        mirrored.append((body["source"], body["reason"]))
        if len(mirrored) == len(stored):
            break
    reader.close()
    assert sorted(mirrored) == sorted(stored)
