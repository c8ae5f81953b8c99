"""The consumer rides out a Kafka broker restart and a PostgreSQL restart mid-stream.

The module restarts servers, so it runs a broker and a PostgreSQL cluster of its own
(started by the deploy scripts in a cache directory of its own, on free ports), never the
suite's shared ones: another test run sharing those (two suites at once, or
pytest-xdist's workers) must not see them go away.

The consumer is a real ``ledger consume`` subprocess. Mid-activity the broker is stopped
and started again (deploy/kafka/stop.sh + start.sh), then, while records are still to be
applied, PostgreSQL is stopped and started (deploy/postgres/stop.sh + start.sh). The
consumer must keep going on its own, say in its log that it is retrying the database with
backoff, and end with exactly the ledger of an undisturbed run: the same records replayed
phase by phase into another database through the same decode and service code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.support import deploy_setting
from consumers.loop import DB_RETRY
from ledger.config import Topics
from ledger.domain.memory import InMemoryLedger
from ledger.simulate import Workload, generate
from ledger.store.opening import open_store
from tests.support.api import free_port
from tests.support.kafka import (
    REPO,
    ConsumerProcess,
    applied_count,
    assert_same_ledger,
    create_topics,
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


@dataclass(frozen=True)
class OwnServers:
    bootstrap: str
    pg_url: str  # the test admin's: scratch databases


@pytest.fixture(scope="module")
def own_servers() -> Iterator[OwnServers]:
    """A broker and a PostgreSQL cluster for this module alone; while it runs, the
    environment points every helper (credentials, role URLs, the deploy scripts) at them."""
    cache = Path(tempfile.mkdtemp(prefix="ledger-restarts-"))
    cache.chmod(0o755)  # the cluster's OS user reaches its data directory through it
    libs = REPO / ".cache" / "kafka" / "libs"  # fetched already by the suite's broker
    if libs.is_dir():
        shutil.copytree(libs, cache / "kafka" / "libs")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEDGER_CACHE_DIR", str(cache))
        env.setenv("KAFKA_PORT", str(free_port()))
        env.setenv("KAFKA_CONTROLLER_PORT", str(free_port()))
        env.setenv("PG_PORT", str(free_port()))
        env.setenv("KAFKA_SCRATCH_ACLS", "1")
        env.delenv("LEDGER_TEST_PG_ENV_FILE", raising=False)
        try:
            run_script("deploy/kafka/start.sh")
            run_script("deploy/postgres/start.sh")
            env.setenv("LEDGER_KAFKA_CREDENTIALS", str(cache / "kafka" / "credentials.json"))
            urls = {
                "LEDGER_TEST_PG_URL": "LEDGER_TEST_PG_URL",
                "LEDGER_TEST_PG_OWNER_URL": "LEDGER_MIGRATE_DB_URL",
                "LEDGER_TEST_PG_SERVICE_URL": "LEDGER_DB_URL",
            }
            for name, setting in urls.items():
                value = deploy_setting(setting)
                assert value, f"deploy/postgres/start.sh wrote no {setting} in {cache}"
                env.setenv(name, value)
            yield OwnServers(
                f"127.0.0.1:{os.environ['KAFKA_PORT']}", os.environ["LEDGER_TEST_PG_URL"]
            )
        finally:
            for script in ("deploy/kafka/stop.sh", "deploy/postgres/stop.sh"):
                subprocess.run(["bash", str(REPO / script)], capture_output=True, timeout=180)
            shutil.rmtree(cache, ignore_errors=True)


def wait_for_count(consumer: ConsumerProcess, store, target: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (count := applied_count(store, consumer.group)) < target:
        consumer.alive()
        assert time.monotonic() < deadline, f"stuck at {count} of {target} applied"
        time.sleep(0.02)
    return count


def test_consumer_survives_broker_and_database_restarts(
    own_servers: OwnServers, tmp_path: Path
) -> None:
    kafka_bootstrap, pg_url = own_servers.bootstrap, own_servers.pg_url
    work = generate(seed=909, sharers=50, buyers=600, orders=3000)
    topics = create_topics(kafka_bootstrap, orders_partitions=4, prefix="restarts")
    names = [topics.orders, topics.accounts]
    with fresh_database(pg_url, ledger=True) as service_url:
        check_restarts(kafka_bootstrap, pg_url, service_url, work, topics, names, tmp_path)


def check_restarts(
    kafka_bootstrap: str,
    pg_url: str,
    fresh_pg_url: str,
    work: Workload,
    topics: Topics,
    names: list[str],
    tmp_path: Path,
) -> None:
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
