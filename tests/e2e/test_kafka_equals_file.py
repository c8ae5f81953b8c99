"""The Kafka path gives the ledger `ledger ingest` gives for the same file (SPEC §4.5,
docs/ordering.md), on the barrier-dense workload, whatever the way it is consumed.

One seeded stream (plans changing mid-stream, enrollments throughout, a settlement run
every few days, payouts with their settled/failed, between ~20k buyer events) is written
to a JSON-lines file, ingested into SQLite as the reference, and published once with
`ledger produce` into fresh topics, which then sit as a full backlog. Each test consumes
that backlog (or a live copy) its own way into a fresh database and must equal the
reference in every balance bucket (sharers, platform fees, merchants), every dead letter
and its reason, every waiting event; runs over the same topics must also have the same
ledger head (replaying the topics from offset 0 gives the identical ledger).
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.ingest_file import ingest_stream
from ledger.jsonform import canonical_json
from ledger.service import LedgerService
from ledger.simulate import generate_dense
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.support.kafka import (
    LEDGER_BIN,
    ConsumerProcess,
    ConsumerThread,
    Figures,
    applied_count,
    create_topics,
    delete_topics,
    end_offsets,
    figures,
    names,
    unique,
    wait_until_applied,
)

SEED = 20261201
ORDERS = 3_200  # ~20k events
PARTITIONS = 4


def head(store: Store) -> str:
    report = verify(store)
    assert report.ok, report.problem
    return report.head


@dataclass(frozen=True)
class Backlog:
    bootstrap: str
    topics: list[str]
    ends: dict[tuple[str, int], int]
    file: Path
    want: Figures
    heads: dict[str, str]  # the first ledger head seen over these topics, by key "head"


def produce_file(bootstrap: str, path: Path, topics: list[str]) -> None:
    result = subprocess.run(
        [
            str(LEDGER_BIN),
            "produce",
            str(path),
            "--bootstrap",
            bootstrap,
            "--topic-orders",
            topics[0],
            "--topic-accounts",
            topics[1],
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Figures]:
    """The file and what `ledger ingest` makes of it."""
    folder = tmp_path_factory.mktemp("dense")
    path = folder / "dense.jsonl"
    events = generate_dense(SEED, orders=ORDERS)
    path.write_text("".join(canonical_json(e) + "\n" for e in events), encoding="utf-8")
    reference = open_store(f"sqlite:///{folder / 'reference.sqlite'}")
    with path.open("rb") as lines:
        ingest_stream(LedgerService(reference), lines, path.name)
    want = figures(reference)
    reference.dispose()
    kinds = {e.TYPE for e in events}
    assert len(events) > 19_000 and kinds >= {
        "plan_published",
        "settlement_run",
        "payout_settled",
        "payout_failed",
    }
    assert want.dead_letters, "the stream must exercise rejections"
    return path, want


@pytest.fixture(scope="module")
def backlog(stream: tuple[Path, Figures], kafka_bootstrap: str) -> Iterator[Backlog]:
    path, want = stream
    topics = create_topics(kafka_bootstrap, orders_partitions=PARTITIONS, prefix="dense")
    produce_file(kafka_bootstrap, path, names(topics))
    ends = end_offsets(kafka_bootstrap, names(topics))
    yield Backlog(kafka_bootstrap, names(topics), ends, path, want, {})
    delete_topics(kafka_bootstrap, names(topics))


def check(store: Store, backlog: Backlog) -> None:
    """Equal to the file's ledger; and the same head as every other run over the topics."""
    got = figures(store)
    assert got.balances == backlog.want.balances
    assert got.dead_letters == backlog.want.dead_letters
    assert got.parked == backlog.want.parked
    assert got.events == backlog.want.events
    got_head = head(store)
    assert backlog.heads.setdefault("head", got_head) == got_head


def processes(
    url: str, backlog: Backlog, group: str, n: int, tmp_path: Path, batch: int = 2000
) -> list[ConsumerProcess]:
    return [
        ConsumerProcess(
            url,
            backlog.bootstrap,
            group,
            backlog.topics,
            tmp_path / f"consumer-{k}.log",
            ["--max-poll-records", str(batch)],
        )
        for k in range(n)
    ]


def run_until_applied(
    store: Store,
    group: str,
    backlog: Backlog,
    consumers: list[ConsumerProcess],
    timeout: float = 240,
) -> None:
    def alive() -> None:
        for consumer in consumers:
            consumer.alive()

    try:
        wait_until_applied(store, group, backlog.ends, timeout, alive)
    finally:
        for consumer in consumers:
            consumer.terminate()


def test_full_backlog_one_consumer_on_sqlite(backlog: Backlog, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kafka.sqlite'}")
    group = unique("one")
    with ConsumerThread(
        store, backlog.bootstrap, group, backlog.topics, max_poll_records=2000
    ) as consumer:
        wait_until_applied(store, group, backlog.ends, 240, consumer.alive)
    check(store, backlog)


@pytest.mark.parametrize("count", [2, 4])
def test_full_backlog_several_processes(
    backlog: Backlog, fresh_pg_url: str, tmp_path: Path, count: int
) -> None:
    store = open_store(fresh_pg_url)
    group = unique(f"procs{count}")
    # small batches, so the backlog outlasts the group's first rebalances
    consumers = [
        c.start() for c in processes(fresh_pg_url, backlog, group, count, tmp_path, batch=100)
    ]
    run_until_applied(store, group, backlog, consumers)
    applied_by = [
        sum(1 for r in c.log_lines() if r.get("event") == "batch applied") for c in consumers
    ]
    assert sum(1 for n in applied_by if n) >= 2, f"the work was not shared: {applied_by}"
    check(store, backlog)


def test_ten_sigkills_of_random_consumers_of_four(
    backlog: Backlog, fresh_pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    store = open_store(fresh_pg_url)
    group = unique("kills")
    consumers = [c.start() for c in processes(fresh_pg_url, backlog, group, 4, tmp_path)]
    target = sum(backlog.ends.values())
    kills = 0
    deadline = time.monotonic() + 240
    try:
        while kills < 10:
            progress = applied_count(store, group)
            assert progress < target, f"caught up after only {kills} kills"
            step = rng.randint(1, max(1, (target - progress) // (3 * (11 - kills))))
            while applied_count(store, group) < progress + step:
                for consumer in consumers:
                    consumer.alive()
                assert time.monotonic() < deadline, "no progress to kill at"
                time.sleep(0.01)
            victim = rng.choice(consumers)
            victim.kill()
            kills += 1
            victim.start()
    finally:
        run_until_applied(store, group, backlog, consumers)
    assert kills == 10
    check(store, backlog)


def test_consumers_joining_and_leaving(backlog: Backlog, fresh_pg_url: str, tmp_path: Path) -> None:
    """Every second or so a consumer leaves (SIGTERM) or one more joins, up to four."""
    rng = random.Random(SEED + 1)
    store = open_store(fresh_pg_url)
    group = unique("churn")
    pool = processes(fresh_pg_url, backlog, group, 4, tmp_path, batch=100)
    running = [pool[0].start()]
    target = sum(backlog.ends.values())
    changes = 0
    try:
        while applied_count(store, group) < target * 0.8 and changes < 12:
            pause_until = time.monotonic() + rng.uniform(0.5, 1.5)
            while time.monotonic() < pause_until:
                for consumer in running:
                    consumer.alive()
                time.sleep(0.05)
            idle = [c for c in pool if c not in running]
            if idle and (len(running) == 1 or rng.random() < 0.5):
                running.append(rng.choice(idle).start())
            else:
                leaving = rng.choice(running)
                leaving.wait_started()  # scaling down a consumer that runs, as operators do
                assert leaving.terminate() == 0
                running.remove(leaving)
            changes += 1
    finally:
        run_until_applied(store, group, backlog, running)
    assert changes >= 3, "the group hardly changed"
    check(store, backlog)


def test_live_while_publishing_two_consumers(
    stream: tuple[Path, Figures], kafka_bootstrap: str, fresh_pg_url: str, tmp_path: Path
) -> None:
    path, want = stream
    topics = names(create_topics(kafka_bootstrap, orders_partitions=PARTITIONS, prefix="live"))
    try:
        live = Backlog(kafka_bootstrap, topics, {}, path, want, {})
        store = open_store(fresh_pg_url)
        group = unique("live")
        consumers = [c.start() for c in processes(fresh_pg_url, live, group, 2, tmp_path)]
        produce_file(kafka_bootstrap, path, topics)  # while they consume
        live = Backlog(
            kafka_bootstrap, topics, end_offsets(kafka_bootstrap, topics), path, want, {}
        )
        run_until_applied(store, group, live, consumers)
        check(store, live)
    finally:
        delete_topics(kafka_bootstrap, topics)


def test_ledger_replay_from_kafka_into_a_fresh_sqlite_file_has_the_same_head(
    backlog: Backlog, tmp_path: Path
) -> None:
    """`ledger replay --from-kafka`: the topics from offset 0 into a new SQLite file give
    the head every run above had (on PostgreSQL), and the file's figures."""
    url = f"sqlite:///{tmp_path / 'replayed.sqlite'}"
    result = subprocess.run(
        [
            str(LEDGER_BIN),
            "replay",
            "--from-kafka",
            "--db",
            url,
            "--bootstrap",
            backlog.bootstrap,
            "--topic-orders",
            backlog.topics[0],
            "--topic-accounts",
            backlog.topics[1],
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    store = open_store(url)
    check(store, backlog)
    assert f"replayed head {backlog.heads['head']}" in result.stdout
    store.dispose()
