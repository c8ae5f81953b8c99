"""The consumer rides out a Kafka broker restart and a PostgreSQL restart mid-stream.

This module restarts the SHARED test servers (deploy/kafka and deploy/postgres, the ones
the ``kafka_bootstrap`` and ``pg_url`` fixtures point at), so it keeps every restart in
one test, and its module fixture starts both servers again (idempotent start scripts)
before the module ends, whatever happened. pytest runs tests serially; nothing else runs
against the servers meanwhile.

The consumer is a real ``ledger consume`` subprocess. Mid-activity the broker is stopped
and started again (deploy/kafka/stop.sh + start.sh), then, while records are still to be
applied, PostgreSQL is stopped and started (deploy/postgres/stop.sh + start.sh). The
consumer must keep going on its own, say in its log that it is retrying the database with
backoff, and end with exactly the ledger of an undisturbed run: the same records replayed
phase by phase into another database through the same decode and service code.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from consumers.loop import DB_RETRY
from ledger.config import Topics
from ledger.domain.memory import InMemoryLedger
from ledger.simulate import generate
from ledger.store.opening import open_store
from tests.support.kafka import (
    REPO,
    ConsumerProcess,
    applied_count,
    assert_same_ledger,
    end_offsets,
    fresh_database,
    publish,
    replay_from_start,
    snapshot,
    unique,
    wait_until_applied,
)

DB_RETRY_EVENT = f"{DB_RETRY}; retrying"  # one event whatever step the outage hit


def run_script(path: str, timeout: float = 180) -> str:
    done = subprocess.run(
        ["bash", str(REPO / path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=REPO,
    )
    assert done.returncode == 0, f"{path} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


PID_OF = {  # bash that prints a server's pid, through the deploy scripts' own helpers
    "kafka": "source deploy/kafka/common.sh && kafka_pid",
    "postgres": "source deploy/postgres/common.sh && pg_resolve_root && pg_pid",
}


def server_pid(server: str) -> str | None:
    done = subprocess.run(
        ["bash", "-c", PID_OF[server]], capture_output=True, text=True, check=False, cwd=REPO
    )
    return done.stdout.strip() or None


def adopt_restarted(server: str, old_pid: str | None) -> None:
    """deploy/test.sh stops at the end only a server it started, recognised by the pid in
    <cache>/test-runs/<server>.started; after our restart that is a new process, so hand
    the marker on to it (else the restarted server would outlive the test run)."""
    cache = Path(os.environ.get("LEDGER_CACHE_DIR", REPO / ".cache"))
    marker = cache / "test-runs" / f"{server}.started"
    new_pid = server_pid(server)
    if old_pid and new_pid and marker.exists() and marker.read_text().strip() == old_pid:
        marker.write_text(new_pid + "\n")


@pytest.fixture(scope="module")
def restartable(kafka_bootstrap: str, pg_url: str) -> Iterator[None]:
    """Checks the deploy scripts drive the servers the fixtures point at; restores both
    afterwards (and keeps deploy/test.sh's record of which servers it started true)."""
    kafka_port = os.environ.get("KAFKA_PORT", "19092")
    pg_port = os.environ.get("PG_PORT", "55432")
    assert kafka_bootstrap.rsplit(":", 1)[1] == kafka_port, (
        f"the broker under test ({kafka_bootstrap}) is not deploy/kafka's (port {kafka_port})"
    )
    assert str(make_url(pg_url).port) == pg_port, (
        f"the database under test ({pg_url}) is not deploy/postgres's (port {pg_port})"
    )
    pids = {server: server_pid(server) for server in PID_OF}
    assert all(pids.values()), f"servers not started by deploy/: {pids}"
    try:
        yield
    finally:
        run_script("deploy/kafka/start.sh")
        run_script("deploy/postgres/start.sh")
        for server, pid in pids.items():
            adopt_restarted(server, pid)


def wait_for_count(consumer: ConsumerProcess, store, target: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (count := applied_count(store, consumer.group)) < target:
        consumer.alive()
        assert time.monotonic() < deadline, f"stuck at {count} of {target} applied"
        time.sleep(0.02)
    return count


def test_consumer_survives_broker_and_database_restarts(
    restartable, kafka_bootstrap, new_topic, fresh_pg_url, pg_url, tmp_path
) -> None:
    work = generate(seed=909, sharers=50, buyers=600, orders=3000)
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    names = [topics.orders, topics.accounts]
    store = open_store(fresh_pg_url)
    consumer = ConsumerProcess(
        fresh_pg_url,
        kafka_bootstrap,
        unique("restarts"),
        names,
        tmp_path / "consumer.log",
        ["--max-poll-records", "300"],
    ).start()
    phase_ends = []
    try:
        publish(kafka_bootstrap, topics, work.setup)
        phase_ends.append(end_offsets(kafka_bootstrap, names))
        wait_until_applied(store, consumer.group, phase_ends[-1], 120, consumer.alive)
        start = sum(phase_ends[-1].values())

        publish(kafka_bootstrap, topics, work.activity)
        phase_ends.append(end_offsets(kafka_bootstrap, names))
        total = sum(phase_ends[-1].values())
        wait_for_count(consumer, store, start + len(work.activity) // 5)
        run_script("deploy/kafka/stop.sh")
        at_broker_stop = applied_count(store, consumer.group)
        run_script("deploy/kafka/start.sh")
        # the consumer is back on the broker: more is applied, then PostgreSQL goes away
        wait_for_count(consumer, store, at_broker_stop + 300)
        run_script("deploy/postgres/stop.sh")
        run_script("deploy/postgres/start.sh")
        at_db_restart = applied_count(store, consumer.group)
        assert at_broker_stop < total and at_db_restart < total, "restarts were not mid-stream"
        wait_until_applied(store, consumer.group, phase_ends[-1], 180, consumer.alive)

        publish(kafka_bootstrap, topics, work.finance)
        phase_ends.append(end_offsets(kafka_bootstrap, names))
        wait_until_applied(store, consumer.group, phase_ends[-1], 120, consumer.alive)
        consumer.alive()  # the same process throughout: it never died
        assert consumer.starts == 1
    finally:
        assert consumer.terminate() == 0

    logs = consumer.log_lines()
    # the broker outage is in the log (the Kafka client's reconnect attempts), and batches
    # were applied after it: the same process reconnected by itself
    outage = [
        i
        for i, r in enumerate(logs)
        if r.get("event") == "kafka client"
        and any(s in r.get("message", "") for s in ("ECONNREFUSED", "Connection lost"))
    ]
    assert outage, "no broker outage logged:\n" + consumer.log_tail()
    assert any(r.get("event") == "batch applied" for r in logs[outage[-1] :])
    # the restart may land in any step (applying a batch, claiming partitions, reading
    # progress): a retry is logged under one name, with its step, attempt and delay
    retries = [r for r in logs if r.get("event") == DB_RETRY_EVENT]
    assert retries, "no database retry logged:\n" + consumer.log_tail()
    assert all({"step", "attempt", "retry_in_s"} <= r.keys() for r in retries)
    for before, after in zip(retries, retries[1:], strict=False):
        same_run = after["step"] == before["step"] and after["attempt"] == before["attempt"] + 1
        if same_run and before["retry_in_s"] < 5:  # below half the 10 s cap
            assert after["retry_in_s"] > before["retry_in_s"], "backoff: the delays grow"

    with fresh_database(pg_url, ledger=True) as calm_url:
        calm = open_store(calm_url)
        replay_from_start(kafka_bootstrap, calm, "undisturbed", names, phase_ends[-1])
        got, want = snapshot(store), snapshot(calm)
        calm.dispose()
    assert_same_ledger(got, want)
    model = InMemoryLedger()
    for events in (work.setup, work.activity, work.finance):
        model.ingest(events)
    assert got.balances == model.balances()
    assert got.events == len(work.all())
    store.dispose()
