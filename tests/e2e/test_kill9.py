"""kill -9 the consumer again and again: the ledger ends exactly as an uninterrupted run.

Two consumer groups read the same topics, each into its own PostgreSQL database, both as
real ``ledger consume`` subprocesses: group A is SIGKILLed at seeded random moments (after
random short delays, and when its stored offsets have advanced by a random amount) and
restarted each time; group B runs undisturbed. The workload is produced phase by phase
(setup, activity, finance) and each phase is waited for in both databases before the next
is produced, so SPEC §4.5's barriers keep their position and the two ledgers must agree
bit for bit: same chain heads, ledger head, balances, dead letters and parked events.
"""

from __future__ import annotations

import random
import time

from ledger.config import Topics
from ledger.domain.memory import InMemoryLedger
from ledger.simulate import generate
from ledger.store.opening import open_store
from tests.support.kafka import (
    ConsumerProcess,
    applied_count,
    assert_same_ledger,
    end_offsets,
    fresh_database,
    kill_at_random_progress,
    publish,
    snapshot,
    unique,
    wait_until_applied,
)

SEED = 20260101
MAX_POLL = "500"  # small batches: many commits to be killed between (or inside)


def kill_after_random_delay(consumer: ConsumerProcess, rng: random.Random, most: float) -> None:
    """SIGKILL after a seeded random delay (maybe mid-start-up, mid-batch or idle), restart."""
    deadline = time.monotonic() + rng.uniform(0.05, most)
    while time.monotonic() < deadline:
        consumer.alive()
        time.sleep(0.01)
    consumer.kill()
    consumer.start()


def test_kill9_many_times_gives_the_uninterrupted_ledger(
    kafka_bootstrap, new_topic, fresh_pg_url, pg_url, tmp_path
) -> None:
    rng = random.Random(SEED)
    work = generate(seed=SEED, sharers=60, buyers=800, orders=3400)
    events = work.all()
    assert len(events) >= 20_000 and len(work.activity) > 0.9 * len(events)
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    topic_names = [topics.orders, topics.accounts]

    with fresh_database(pg_url, ledger=True) as calm_url:
        killed_store, calm_store = open_store(fresh_pg_url), open_store(calm_url)
        killed = ConsumerProcess(
            fresh_pg_url,
            kafka_bootstrap,
            unique("kill9-a"),
            topic_names,
            tmp_path / "killed.log",
            # static membership: a restarted consumer takes its partitions back at once
            ["--max-poll-records", MAX_POLL, "--instance-id", "kill9-a"],
        ).start()
        calm = ConsumerProcess(
            calm_url,
            kafka_bootstrap,
            unique("kill9-b"),
            topic_names,
            tmp_path / "calm.log",
            ["--max-poll-records", MAX_POLL],
        ).start()
        kills = markers = 0
        try:
            for phase, phase_events in (
                ("setup", work.setup),
                ("activity", work.activity),
                ("finance", work.finance),
            ):
                if phase == "activity":
                    # down while the phase is published, so its whole backlog is still to
                    # apply when the kills at random progress begin (a consumer keeping up
                    # with a publisher slowed by load left no progress to kill at)
                    killed.kill()
                    kills += 1
                markers += publish(kafka_bootstrap, topics, phase_events)
                ends = end_offsets(kafka_bootstrap, topic_names)
                if phase == "activity":
                    killed.start()
                    kills += kill_at_random_progress(killed, killed_store, rng, ends, kills=8)
                    for _ in range(2):  # and twice at a random moment, whatever it is doing
                        kill_after_random_delay(killed, rng, 1.0)
                        kills += 1
                else:
                    kill_after_random_delay(killed, rng, 0.8)
                    kills += 1
                wait_until_applied(killed_store, killed.group, ends, 180, killed.alive)
                wait_until_applied(calm_store, calm.group, ends, 180, calm.alive)
            assert kills >= 10
            assert killed.starts == kills + 1
            assert (
                applied_count(killed_store, killed.group)
                == sum(ends.values())
                == len(events) + markers
            )
        finally:
            killed.terminate()
            calm.terminate()

        got, want = snapshot(killed_store), snapshot(calm_store)
        assert_same_ledger(got, want)
        assert got.events == len({e.event_id for e in events})

        # and both equal the in-memory reference model fed the same phases in order
        model = InMemoryLedger()
        for phase_events in (work.setup, work.activity, work.finance):
            model.ingest(phase_events)
        assert got.balances == model.balances()
        assert got.dead_letters == sorted((e, r) for e, r, _ in model.rejected)
        assert got.parked == sorted(model.parked())
        assert got.entries == len(model.entries) > 5_000
        killed_store.dispose()
        calm_store.dispose()
