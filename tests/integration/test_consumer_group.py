"""Two consumers in one group share the partitions and give the one-consumer ledger.

Group "pair" runs two ConsumerLoops side by side on the 4-partition orders topic and the
1-partition accounts topic, writing to one PostgreSQL database concurrently; group "solo"
runs one consumer over the same topics into another database. Phases are produced one at
a time and waited for in both databases (SPEC §4.5). One hash chain per partition and one
writer per partition make the chains identical, so the ledger heads must be equal too.
"""

from __future__ import annotations

import time

from ledger.config import Topics
from ledger.simulate import generate
from ledger.store.opening import open_store
from tests.support.kafka import (
    ConsumerThread,
    RecordingService,
    assert_same_ledger,
    end_offsets,
    fresh_database,
    publish,
    snapshot,
    unique,
    wait_until_applied,
)


def wait_for_split(consumers: list[ConsumerThread], partitions: int, timeout: float = 60) -> None:
    """Poll until the group is stable with every consumer owning some partitions."""
    deadline = time.monotonic() + timeout
    while True:
        owned = [c.loop.owned() for c in consumers]
        if all(owned) and sum(len(o) for o in owned) == partitions:
            return
        for consumer in consumers:
            consumer.alive()
        assert time.monotonic() < deadline, f"group never split the partitions: {owned}"
        time.sleep(0.05)


def test_two_consumers_in_one_group_equal_one(
    kafka_bootstrap, new_topic, fresh_pg_url, pg_url
) -> None:
    work = generate(seed=77, sharers=40, buyers=400, orders=1200)
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    names = [topics.orders, topics.accounts]
    pair_store = open_store(fresh_pg_url)
    with fresh_database(pg_url, ledger=True) as solo_url:
        solo_store = open_store(solo_url)
        pair_group, solo_group = unique("pair"), unique("solo")
        services = [RecordingService(pair_store), RecordingService(pair_store)]
        pair = [
            ConsumerThread(
                pair_store, kafka_bootstrap, pair_group, names, service=s, max_poll_records=400
            ).start()
            for s in services
        ]
        solo = ConsumerThread(
            solo_store, kafka_bootstrap, solo_group, names, max_poll_records=400
        ).start()
        try:
            wait_for_split(pair, partitions=5)
            for phase in (work.setup, work.activity, work.finance):
                publish(kafka_bootstrap, topics, phase)
                ends = end_offsets(kafka_bootstrap, names)
                for consumer in pair:
                    wait_until_applied(pair_store, pair_group, ends, 120, consumer.alive)
                wait_until_applied(solo_store, solo_group, ends, 120, solo.alive)
        finally:
            for consumer in [*pair, solo]:
                consumer.stop()

        # both really consumed, and no partition was applied by both
        owned = [set(s.partitions) for s in services]
        assert all(owned), owned
        assert not owned[0] & owned[1], owned
        assert owned[0] | owned[1] == set(ends)
        assert all(loop.batches > 0 for loop in (pair[0].loop, pair[1].loop))

        got, want = snapshot(pair_store), snapshot(solo_store)
        assert_same_ledger(got, want)
        assert set(got.chains) == {f"{t}/{p}" for t, p in ends}  # every partition's chain
        assert got.events == len(work.all())
        solo_store.dispose()
    pair_store.dispose()
