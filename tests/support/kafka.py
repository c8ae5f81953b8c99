"""Helpers for tests and benchmarks that drive the real Kafka broker and a real database.

Everything here synchronises by polling with a deadline (never a bare sleep):
- ``create_topics`` returns only once the broker reports every partition with a leader;
- ``wait_until_applied`` returns once the offsets the ledger stored in its database (in
  the same transaction as the batch's effects) reach the topics' end offsets, i.e. every
  record produced so far has been applied;
- ``produce_phases`` keeps SPEC §4.5's barriers: it produces one phase of a workload
  (setup, activity, finance), waits until it is applied, and only then produces the next.

``ConsumerProcess`` runs ``ledger consume`` as a subprocess (for kill -9 tests) with its
JSON logs in a file; ``ConsumerThread`` runs a ``ConsumerLoop`` in a thread.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from sqlalchemy import func, select

# Scratch databases and topic plumbing are shared with the benchmarks (one copy, in bench/).
from bench.support import (
    applied_offsets,
    auth,
    end_offsets,
    publisher_auth,
    scratch_topics,
    unique,
    wait_for_partitions,
)
from bench.support import fresh_database as fresh_database
from bench.support import wait_until_applied as wait_until_applied
from consumers.loop import ConsumerConfig, ConsumerLoop
from consumers.metrics import ConsumerMetrics
from ledger.config import Topics
from ledger.domain.events import Event
from ledger.kafka.publisher import Publisher
from ledger.service import LedgerService
from ledger.simulate import Workload
from ledger.store import tables as t
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.support import reads as queries

REPO = Path(__file__).resolve().parents[2]
LEDGER_BIN = REPO / ".venv" / "bin" / "ledger"
POLL_S = 0.05  # how often the wait helpers look again

Ends = dict[tuple[str, int], int]  # (topic, partition) -> end offset (next offset to write)


# --- topics --------------------------------------------------------------------------------


def new_topics(prefix: str = "it") -> Topics:
    """Unique names for a run's topics (not created), under the scratch prefixes the test
    broker's ACLs grant to the ledger's principals (ledger/kafka/acls.py)."""
    return scratch_topics(unique(prefix))


def create_topics(
    bootstrap: str,
    *,
    orders_partitions: int = 4,
    accounts_partitions: int = 1,
    prefix: str = "it",
    timeout: float = 30.0,
    topics: Topics | None = None,
) -> Topics:
    """Create the orders and accounts topics (fresh names unless ``topics`` is given);
    returns once both are usable."""
    topics = topics or new_topics(prefix)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        admin.create_topics(
            [
                NewTopic(topics.orders, orders_partitions, 1),
                NewTopic(topics.accounts, accounts_partitions, 1),
            ]
        )
    finally:
        admin.close()
    wait_for_partitions(
        bootstrap, {topics.orders: orders_partitions, topics.accounts: accounts_partitions}, timeout
    )
    return topics


def delete_topics(bootstrap: str, topic_names: Iterable[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        existing = set(admin.list_topics())
        doomed = [name for name in topic_names if name in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def topic_exists(bootstrap: str, name: str) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        return name in admin.list_topics()
    finally:
        admin.close()


def names(topics: Topics) -> list[str]:
    return [topics.orders, topics.accounts]


# --- producing -----------------------------------------------------------------------------


def publish(bootstrap: str, topics: Topics, events: Sequence[Event]) -> int:
    """Publish ``events`` in order and wait until every one is acknowledged, as
    `ledger produce` does (publisher and finance principals); returns how many barrier
    markers were written with them."""
    with Publisher(bootstrap, topics, auth=publisher_auth()) as publisher:
        for event in events:
            publisher.publish(event)
    return publisher.markers


def produce_raw(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes | None]],
    role: str = "admin",
) -> list[str]:
    """Send (topic, key, value) records in order, bytes untouched, with an idempotent
    producer (per-partition order kept) authenticated as ``role`` (default the admin,
    which may write any topic); returns each record's "topic/partition@offset"."""
    producer = KafkaProducer(
        **auth(role),
        bootstrap_servers=bootstrap,
        linger_ms=20,
        batch_size=512 * 1024,
        enable_idempotence=True,
        acks="all",
    )
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
        producer.flush()
        sources = []
        for future in futures:
            meta = future.get(timeout=30)
            sources.append(f"{meta.topic}/{meta.partition}@{meta.offset}")
        return sources
    finally:
        producer.close()


def seal(bootstrap: str, topics: Topics) -> None:
    """Mark every orders partition with the accounts topic's last offset, as a publisher
    does after barriers: for tests that write accounts records raw."""
    end = end_offsets(bootstrap, [topics.accounts])[(topics.accounts, 0)]
    with Publisher(bootstrap, topics, auth=publisher_auth()) as publisher:
        publisher.seal(end - 1)


def applied_count(store: Store, group: str) -> int:
    """How many records the group has applied so far (sum of stored next offsets)."""
    stored = applied_offsets(LedgerService(store), group)
    return 0 if stored is None else sum(stored.values())


def produce_phases(
    bootstrap: str,
    topics: Topics,
    workload: Workload,
    store: Store,
    group: str,
    *,
    timeout: float = 180.0,
    alive: Callable[[], None] | None = None,
    during: Callable[[str, Ends], None] | None = None,
) -> Ends:
    """Produce setup, activity and finance one after another, each only once the previous
    one is fully applied (SPEC §4.5 barriers keep their position). ``during(phase, ends)``
    runs right after a phase is produced, before waiting (kills, restarts...)."""
    ends: Ends = {}
    for phase, events in (
        ("setup", workload.setup),
        ("activity", workload.activity),
        ("finance", workload.finance),
    ):
        publish(bootstrap, topics, events)
        ends = end_offsets(bootstrap, names(topics))
        if during is not None:
            during(phase, ends)
        wait_until_applied(store, group, ends, timeout, alive)
    return ends


# --- consumers -----------------------------------------------------------------------------


class ConsumerThread:
    """A ConsumerLoop in a daemon thread; ``stop()`` joins it and re-raises its error."""

    def __init__(
        self,
        store: Store,
        bootstrap: str,
        group: str,
        topics: Sequence[str],
        service: LedgerService | None = None,
        **overrides: Any,
    ) -> None:
        orders, accounts = topics
        config = ConsumerConfig(
            bootstrap,
            group,
            orders,
            accounts,
            max_backoff_s=2.0,
            kafka_overrides=tuple(overrides.items()),
            auth=tuple(auth("consumer").items()),
        )
        self.metrics = ConsumerMetrics()
        self.service = service or LedgerService(store)
        self.loop = ConsumerLoop(config, self.service, self.metrics)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"consumer-{group}")

    def _run(self) -> None:
        try:
            self.loop.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by alive()/stop()
            self.error = exc

    def start(self) -> Self:
        self.thread.start()
        return self

    def alive(self) -> None:
        if self.error is not None:
            raise AssertionError(f"consumer thread failed: {self.error!r}") from self.error
        if not self.thread.is_alive():
            raise AssertionError("consumer thread exited")

    def wait_counted(self, ends: Ends, timeout: float = 60.0) -> None:
        """Wait until this consumer (owning every partition) has applied and counted in
        its metrics every record before ``ends``. ``wait_until_applied`` is not enough
        before reading a metric: the offsets in the database move at the batch's commit,
        the metrics a moment later (after the Kafka commit on a busy machine)."""
        deadline = time.monotonic() + timeout
        while True:
            behind = {tp: (self.loop.position(tp), end) for tp, end in ends.items()}
            behind = {tp: at for tp, at in behind.items() if at[0] is None or at[0] < at[1]}
            if not behind:
                return
            self.alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"not counted after {timeout}s: (position, end) {behind}")
            time.sleep(POLL_S)

    def stop(self, timeout: float = 60.0) -> None:
        self.loop.stop()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"consumer thread did not stop within {timeout}s")
        if self.error is not None:
            raise AssertionError(f"consumer thread failed: {self.error!r}") from self.error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RecordingService(LedgerService):
    """The real service, noting which partitions each batch it applied came from (to show
    which consumer of a group owned what)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.partitions: dict[tuple[str, int], int] = {}  # partition -> records applied

    def ingest(self, batch: Any, *, advances: Any = (), group: str | None = None) -> Any:
        report = super().ingest(batch, advances=advances, group=group)
        for item in batch:
            where = item.source.rsplit("@", 1)[0]
            topic, partition = where.rsplit("/", 1)
            key = (topic, int(partition))
            self.partitions[key] = self.partitions.get(key, 0) + 1
        return report


def replay_from_start(
    bootstrap: str,
    store: Store,
    group: str,
    topics: Sequence[str],
    ends: Ends,
    timeout: float = 180.0,
) -> None:
    """The undisturbed reference run: a fresh consumer group reads the topics from offset 0
    into ``store`` until it has applied up to ``ends``. The arrival order is a function of
    the topics' contents (docs/ordering.md), so this equals any run over the same records."""
    with ConsumerThread(store, bootstrap, group, topics) as consumer:
        wait_until_applied(store, group, ends, timeout, consumer.alive)


@dataclass
class ConsumerProcess:
    """``ledger consume`` as a subprocess, logging JSON lines to ``log_path``."""

    db_url: str
    bootstrap: str
    group: str
    topics: Sequence[str]
    log_path: Path
    extra_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Self:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        args = [
            str(LEDGER_BIN),
            "consume",
            "--db",
            self.db_url,
            "--bootstrap",
            self.bootstrap,
            "--group",
            self.group,
        ]
        orders, accounts = self.topics
        args += ["--topic-orders", orders, "--topic-accounts", accounts]
        args += list(self.extra_args)
        env = {**os.environ, "LEDGER_LOG_FORMAT": "json", "LEDGER_LOG_LEVEL": "info", **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(
                f"consumer process exited (code {code}); log tail:\n" + self.log_tail()
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind happens in the consumer."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def wait_started(self, timeout: float = 60.0) -> None:
        """Poll the log until this start of the process has logged "consumer started" (its
        signal handlers are in place from then on; a SIGTERM before that simply kills it)."""
        deadline = time.monotonic() + timeout
        while sum(r.get("event") == "consumer started" for r in self.log_lines()) < self.starts:
            self.alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer not started within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the consumer finishes its batch and exits 0."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"consumer did not stop on SIGTERM within {timeout}s") from None

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log records written so far (non-JSON lines are skipped)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll the log until a record satisfies ``predicate``; returns that record."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.log_lines():
                if predicate(record):
                    return record
            self.alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"no such log record after {timeout}s:\n" + self.log_tail())
            time.sleep(POLL_S)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


def kill_at_random_progress(
    consumer: ConsumerProcess,
    store: Store,
    rng: random.Random,
    ends: Ends,
    *,
    kills: int,
    timeout: float = 120.0,
) -> int:
    """SIGKILL ``consumer`` ``kills`` times while it applies up to ``ends``, each time once
    the applied count has advanced by a random amount (seeded), then restart it. Returns
    the number of kills done (fewer if the consumer caught up first)."""
    target = sum(ends.values())
    done = 0
    deadline = time.monotonic() + timeout
    for _ in range(kills):
        now = applied_count(store, consumer.group)
        remaining = target - now
        if remaining <= 0:
            break
        # spread the kills over what is left, with some randomness in each step
        step = max(1, int(remaining / (kills - done + 1) * rng.uniform(0.3, 1.3)))
        while applied_count(store, consumer.group) < now + step:
            consumer.alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"no progress to kill at after {timeout}s")
            time.sleep(0.01)
        consumer.kill()
        done += 1
        consumer.start()
    return done


# --- comparing ledgers ---------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerSnapshot:
    ok: bool
    problem: str | None
    head: str
    chains: dict[str, tuple[int, str]]
    balances: dict[tuple[str, str], int]
    dead_letters: list[tuple[str | None, str]]  # (event_id, reason), sorted
    parked: list[str]  # event ids still waiting, sorted
    events: int  # rows in the event log
    entries: int


def snapshot(store: Store) -> LedgerSnapshot:
    report = verify(store)
    with store.read() as conn:
        dead = conn.execute(select(t.dead_letters.c.event_id, t.dead_letters.c.reason)).all()
        parked = conn.execute(select(t.parked.c.event_id)).scalars().all()
        events = conn.execute(select(func.count()).select_from(t.events)).scalar_one()
        entries = conn.execute(select(func.count()).select_from(t.entries)).scalar_one()
    return LedgerSnapshot(
        ok=report.ok,
        problem=report.problem,
        head=report.head,
        chains=dict(report.chains),
        balances=queries.account_balances(store),
        dead_letters=sorted(((e, r) for e, r in dead), key=lambda x: (x[0] or "", x[1])),
        parked=sorted(parked),
        events=int(events),
        entries=int(entries),
    )


def assert_same_ledger(got: LedgerSnapshot, want: LedgerSnapshot) -> None:
    """Field by field, so a failure says which part differs."""
    assert got.ok, got.problem
    assert want.ok, want.problem
    assert got.chains == want.chains
    assert got.head == want.head
    assert got.balances == want.balances
    assert got.dead_letters == want.dead_letters
    assert got.parked == want.parked
    assert got.events == want.events
    assert got.entries == want.entries


@dataclass(frozen=True)
class Figures:
    """What a ledger holds, comparable across backends and arrival orders: every balance
    bucket, every dead letter with its reason, every waiting event, the event-log rows."""

    balances: dict[tuple[str, str], int]
    dead_letters: list[tuple[str | None, str]]
    parked: list[str]
    events: int


def figures(store: Store) -> Figures:
    with store.read() as conn:
        dead = conn.execute(select(t.dead_letters.c.event_id, t.dead_letters.c.reason)).all()
        parked = conn.execute(select(t.parked.c.event_id)).scalars().all()
        events = conn.execute(select(func.count()).select_from(t.events)).scalar_one()
    return Figures(
        queries.account_balances(store),
        sorted(((e, r) for e, r in dead), key=lambda x: (x[0] or "", x[1])),
        sorted(parked),
        int(events),
    )


def ingested_figures(events: Sequence[Event], folder: Path) -> Figures:
    """What `ledger ingest` (the real command) makes of ``events`` written to a JSON-lines
    file in publish order, in a new SQLite ledger under ``folder``: the reference a
    Kafka-built ledger of the same events must equal."""
    from ledger.jsonform import canonical_json
    from ledger.store.opening import open_store

    path = folder / "events.jsonl"
    path.write_text("".join(canonical_json(e) + "\n" for e in events), encoding="utf-8")
    url = f"sqlite:///{folder / 'ingested.sqlite'}"
    done = subprocess.run(
        [str(LEDGER_BIN), "ingest", str(path), "--db", url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    store = open_store(url)
    try:
        return figures(store)
    finally:
        store.dispose()
