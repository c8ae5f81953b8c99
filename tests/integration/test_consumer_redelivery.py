"""Redelivery through Kafka: the same events at new offsets change nothing, and are counted.

SPEC §4.3: the event id is the idempotency key. A producer that retries, or a topic that is
replayed, puts the same events at new offsets; the consumer must apply none of them again
(same chain heads, same balances, no new event-log rows) and count them as duplicates.
"""

from __future__ import annotations

from ledger.config import Topics
from ledger.domain.memory import InMemoryLedger
from ledger.simulate import generate
from ledger.store.opening import open_store
from tests.support.kafka import (
    ConsumerThread,
    assert_same_ledger,
    end_offsets,
    produce_phases,
    publish,
    snapshot,
    unique,
    wait_until_applied,
)

DUPLICATES = "ledger_duplicate_events_total"


def duplicates(consumer: ConsumerThread) -> float:
    return consumer.metrics.registry.get_sample_value(DUPLICATES) or 0.0


def test_the_whole_stream_again_changes_nothing(kafka_bootstrap, new_topic, fresh_pg_url) -> None:
    work = generate(seed=41, sharers=30, buyers=200, orders=500)
    events = work.all()
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    store = open_store(fresh_pg_url)
    group = unique("redeliver")
    with ConsumerThread(
        store, kafka_bootstrap, group, [topics.orders, topics.accounts], max_poll_records=300
    ) as consumer:
        ends = produce_phases(kafka_bootstrap, topics, work, store, group, alive=consumer.alive)
        consumer.wait_counted(ends)
        once = snapshot(store)
        assert duplicates(consumer) == 0

        # every event again, at new offsets; all are duplicates, so their order is free
        before = sum(end_offsets(kafka_bootstrap, [topics.orders, topics.accounts]).values())
        markers = publish(kafka_bootstrap, topics, events)
        ends = end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])
        assert sum(ends.values()) == before + len(events) + markers
        wait_until_applied(store, group, ends, 120, consumer.alive)
        consumer.wait_counted(ends)
        twice = snapshot(store)
        assert duplicates(consumer) == len(events)

    assert_same_ledger(twice, once)
    assert twice.events == len(events)  # no event-log row for a redelivered event
    store.dispose()


def test_duplicates_inside_the_stream_are_no_ops(kafka_bootstrap, new_topic, fresh_pg_url) -> None:
    """Each phase published twice back to back: duplicates land in the same poll batch as
    their first copy, and in later ones; the result is the model of the events once."""
    work = generate(seed=42, sharers=30, buyers=200, orders=400)
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    store = open_store(fresh_pg_url)
    group = unique("dup-inside")
    doubled = type(work)(setup=work.setup * 2, activity=work.activity * 2, finance=work.finance * 2)
    with ConsumerThread(
        store, kafka_bootstrap, group, [topics.orders, topics.accounts], max_poll_records=5000
    ) as consumer:
        ends = produce_phases(kafka_bootstrap, topics, doubled, store, group, alive=consumer.alive)
        consumer.wait_counted(ends)  # the metric moves after the offsets in the database
        assert duplicates(consumer) == len(work.all())
    model = InMemoryLedger()
    for phase in (work.setup, work.activity, work.finance):
        model.ingest(phase)
    got = snapshot(store)
    assert got.ok, got.problem
    assert got.balances == model.balances()
    assert got.dead_letters == sorted((e, r) for e, r, _ in model.rejected)
    assert got.events == len(work.all())
    assert got.entries == len(model.entries)
    store.dispose()
