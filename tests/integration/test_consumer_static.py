"""A consumer started before its topics exist waits for them, creates none, and still owns
every partition after a kill -9 and a quick restart with the same static instance id.

Regression test: the consumer used to join the group at once; a leader assigning before
the topics' metadata arrived handed out no partitions, and a member restarted with the
same ``--instance-id`` was given that stale empty assignment by the broker (static
membership: no rebalance) and never consumed anything. Subscribing also auto-created
missing topics with the broker's default partition count.
"""

from __future__ import annotations

from ledger.domain.memory import InMemoryLedger
from ledger.simulate import generate
from ledger.store.opening import open_store
from tests.support import reads as queries
from tests.support.kafka import (
    ConsumerProcess,
    create_topics,
    delete_topics,
    names,
    new_topics,
    produce_phases,
    topic_exists,
    unique,
)


def test_consumer_waits_for_topics_and_keeps_them_across_a_static_restart(
    kafka_bootstrap, fresh_pg_url, tmp_path
) -> None:
    topics = new_topics("static")
    store = open_store(fresh_pg_url)
    consumer = ConsumerProcess(
        fresh_pg_url,
        kafka_bootstrap,
        unique("static"),
        names(topics),
        tmp_path / "consumer.log",
        ["--instance-id", "static-1", "--max-poll-records", "200"],
    )
    try:
        consumer.start()
        waiting = consumer.wait_for_log(lambda r: r.get("event") == "waiting for topic metadata")
        assert set(waiting["topics"]) == set(names(topics))
        assert not topic_exists(kafka_bootstrap, topics.accounts)  # not auto-created

        create_topics(kafka_bootstrap, topics=topics)
        consumer.wait_for_log(
            lambda r: r.get("event") == "partitions assigned" and len(r.get("partitions", [])) == 5
        )
        consumer.kill()
        consumer.start()  # same instance id: the broker hands back the same assignment

        work = generate(seed=5150, sharers=20, buyers=100, orders=300)
        produce_phases(
            kafka_bootstrap, topics, work, store, consumer.group, timeout=60, alive=consumer.alive
        )
        model = InMemoryLedger()
        for phase in (work.setup, work.activity, work.finance):
            model.ingest(phase)
        assert queries.account_balances(store) == model.balances()
    finally:
        consumer.terminate()
        store.dispose()
        delete_topics(kafka_bootstrap, names(topics))
