"""Publishing and creating topics on the replicated cluster (deploy/kafka/start-cluster.sh:
three brokers, replication factor 3, min.insync.replicas=2) while brokers are SIGKILLed,
started once for the module:

- one broker killed: `ledger create-topics` right away (the dead broker still in the
  metadata: the admin request may go there) succeeds with replication factor 3; once the
  controller has fenced it, Kafka refuses a replication factor of 3 on two live brokers,
  and the command says so in one line (the cause and the fix), no traceback;
- two brokers killed (below min.insync.replicas, nothing can be acknowledged): `ledger
  produce` gives up after its --ack-timeout, exits 2 and says how many events were
  acknowledged and how many not, and that running the file again is safe; the API's
  Kafka sink answers 503 "not published" to every waiting request. Brought back by the
  deploy script, the same file published again: the ledger `ledger consume` makes equals
  what `ledger ingest` makes of the file (balances, dead letters, waiting events).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.api.app import create_app
from ledger.api.sink import KafkaSink
from ledger.domain.events import ClickRecorded, Event
from ledger.jsonform import canonical_json, event_to_json
from ledger.kafka.publisher import Publisher
from ledger.simulate import generate_dense
from ledger.store.opening import open_store
from tests.support.api import auth, token_book
from tests.support.cluster import Cluster, started_cluster
from tests.support.http import uvicorn_thread
from tests.support.kafka import (
    LEDGER_BIN,
    ConsumerProcess,
    delete_topics,
    end_offsets,
    figures,
    ingested_figures,
    names,
    new_topics,
    publisher_auth,
    topic_exists,
    unique,
    wait_until_applied,
)

ACK_TIMEOUT = "3"  # seconds: the bounded wait under test, short so the test stays short


@pytest.fixture(scope="module")
def cluster(kafka_auth) -> Iterator[Cluster]:
    with started_cluster() as started:
        yield started


def ledger(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LEDGER_BIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test
        check=False,
    )


def create_topics(
    cluster: Cluster, prefix: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    topics = new_topics(prefix)
    env = {
        "LEDGER_TOPIC_ORDERS": topics.orders,
        "LEDGER_TOPIC_ACCOUNTS": topics.accounts,
        "LEDGER_TOPIC_DEAD_LETTERS": topics.dead_letters,
    }
    done = subprocess.run(
        [str(LEDGER_BIN), "create-topics", "--bootstrap", cluster.bootstrap]
        + ["--orders-partitions", "2", *args],
        capture_output=True,
        text=True,
        timeout=180,  # a hang fails the test
        check=False,
        env={**os.environ, **env},
    )
    return done, env


def test_create_topics_with_a_broker_killed(cluster: Cluster) -> None:
    victim = 3
    cluster.kill(victim)
    made: list[str] = []
    try:
        # 1. at once: the dead broker is still in the metadata, an admin request may go
        #    there (the gap `ledger produce` had): asked again, it succeeds
        done, env = create_topics(cluster, "ct-kill")
        made += env.values()
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("replication factor 3)") == 3, done.stdout
        # 2. once the controller has fenced it: Kafka 4.4 still places the third replica
        #    on the fenced broker (found here; it does not refuse), led by the live ones
        cluster.wait_for(lambda: victim not in cluster.brokers() or None, "the fence", 90)
        done, env = create_topics(cluster, "ct-fenced")
        made += env.values()
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("replication factor 3)") == 3, done.stdout
        layout = cluster.partitions(env.values())
        assert all(p["leader"] in (1, 2) and len(p["replicas"]) == 3 for p in layout.values())
        # 3. a factor Kafka does refuse (more replicas than brokers): one line, the cause
        #    and the fix, no traceback
        done, env = create_topics(cluster, "ct-refused", "--replication-factor", "4")
        assert done.returncode == 1, done.stdout + done.stderr
        said = done.stderr.strip()
        assert "Traceback" not in said and len(said.splitlines()) == 1, said
        assert "refused replication factor 4" in said and "start-cluster.sh" in said, said
        assert "--replication-factor" in said, said
        print(f"\n  create-topics, factor 4: {said}")  # noqa: T201 - with -s, for the docs
        assert not any(topic_exists(cluster.bootstrap, name) for name in env.values())
    finally:
        cluster.start()
    # the broker back: every replica of the topics made without it catches up
    cluster.wait_fully_replicated(made)
    delete_topics(cluster.bootstrap, made)


def _clicks(tag: str, n: int) -> list[dict[str, object]]:
    return [
        event_to_json(
            ClickRecorded(
                f"{tag}-{k}",
                1,
                "t",
                click_id=f"{tag}-{k}",
                sharer_id="s",
                buyer_id=f"b{k}",
                product_id="p",
            )
        )
        for k in range(n)
    ]


def _post_at_once(base: str, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda b=body: answers.append(
                httpx.post(f"{base}/api/v1/events", headers=auth("publisher"), json=b, timeout=120)
            )
        )
        for body in bodies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    assert not any(thread.is_alive() for thread in threads), "a request was left hanging"
    return answers


def _post_until_accepted(base: str, bodies: list[dict[str, object]]) -> list[int]:
    """Each body POSTed again after a 503 (as a client does), until a deadline: the
    final statuses. Right after a restart, leadership may still be moving."""
    statuses = []
    for body in bodies:
        deadline = time.monotonic() + 120
        while True:
            answer = httpx.post(
                f"{base}/api/v1/events", headers=auth("publisher"), json=body, timeout=120
            )
            if answer.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        statuses.append(answer.status_code)
    return statuses


def test_two_brokers_down_bounded_failures_then_the_same_file_again(
    cluster: Cluster, fresh_pg_url: str, tmp_path: Path
) -> None:
    topics, probe = new_topics("outage"), new_topics("outage-api")
    cluster.create_topics(topics)
    cluster.create_topics(probe, orders_partitions=2)
    events: list[Event] = generate_dense(20261207, orders=40)
    file = tmp_path / "events.jsonl"
    file.write_text("".join(canonical_json(e) + "\n" for e in events), encoding="utf-8")
    want = ingested_figures(events, tmp_path)
    publish = ["produce", str(file), "--bootstrap", cluster.bootstrap]
    publish += ["--topic-orders", topics.orders, "--topic-accounts", topics.accounts]
    store = open_store(fresh_pg_url)
    sink = KafkaSink(
        Publisher(
            cluster.bootstrap, probe, auth=publisher_auth(), ack_timeout=3.0, max_block_ms=3000
        )
    )
    try:
        first = cluster.leader(topics.accounts)
        cluster.kill(first)
        cluster.kill(next(n for n in cluster.running() if n != first))

        # `ledger produce`: a bounded wait, then what was and was not acknowledged
        done = ledger(*publish, "--ack-timeout", ACK_TIMEOUT)
        assert done.returncode == 2, done.stdout + done.stderr[-3000:]
        counted = re.search(r"(\d+) of (\d+) events acknowledged by Kafka, (\d+) not", done.stderr)
        assert counted, done.stderr[-3000:]
        acked, total, missing = map(int, counted.groups())
        assert total == len(events) and acked + missing == total and missing > 0
        assert "running the same file again is safe" in done.stderr
        assert "Traceback" not in done.stderr
        print(f"\n  produce, 2 brokers down: {done.stderr[-600:]}")  # noqa: T201 - as above

        # the API: every waiting request answered 503, none hangs
        with uvicorn_thread(create_app(store, token_book(), sink)) as base:
            answers = _post_at_once(base, _clicks("down", 6))
            assert sorted(a.status_code for a in answers) == [503] * 6
            assert all("not published" in a.json()["detail"] for a in answers)
            print(f"\n  API, 2 brokers down: {answers[0].text}")  # noqa: T201 - as above

            # both back: the same file again, and the API's requests again, go through
            cluster.start()
            assert sorted(cluster.running()) == [1, 2, 3]
            again = ledger(*publish, "--ack-timeout", "120")
            assert again.returncode == 0, again.stdout + again.stderr[-3000:]
            assert f"published {len(events)}, invalid 0" in again.stdout
            assert _post_until_accepted(base, _clicks("down", 6)) == [202] * 6
    finally:
        sink.close()
        cluster.start()

    # consumed from the topics (the first run's unacknowledged records included, if any
    # got there): the ledger `ledger ingest` makes of the file
    group = unique("outage")
    consumer = ConsumerProcess(
        fresh_pg_url, cluster.bootstrap, group, names(topics), tmp_path / "consumer.log"
    ).start()
    try:
        ends = end_offsets(cluster.bootstrap, names(topics))
        wait_until_applied(store, group, ends, 180, consumer.alive)
        got = figures(store)
    finally:
        assert consumer.terminate() == 0
        store.dispose()
        delete_topics(cluster.bootstrap, [*names(topics), *names(probe)])
    assert got == want
