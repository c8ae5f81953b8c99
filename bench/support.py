"""What the benchmarks need from the project and from the servers, in one place.

Every import of ledger/consumers/projectors internals used under bench/ goes through this
module (the store package is being reorganised: fix the imports here only). It also holds
the Kafka/PostgreSQL helpers the benchmarks used to borrow from tests/: nothing under
bench/ imports ``tests``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from consumers.client import CONSUMER_DEFAULTS, ConsumerConfig
from consumers.loop import ConsumerLoop
from consumers.metrics import ConsumerMetrics
from ledger import spreadsheets
from ledger.api.auth import hash_token
from ledger.config import Topics, load_settings
from ledger.domain.entries import JournalEntry, Posting, merchant_account, sharer_account
from ledger.domain.events import (
    ClickRecorded,
    Event,
    OrderLine,
    OrderPlaced,
    PlanPublished,
    SharerEnrolled,
)
from ledger.domain.memory import InMemoryLedger
from ledger.domain.money import split_lines
from ledger.kafka.acls import SCRATCH_TOPICS
from ledger.kafka.auth import client_options
from ledger.kafka.publisher import Publisher
from ledger.logs import configure_logging
from ledger.payload import dump_event
from ledger.read import balances, downloads
from ledger.read import orders as order_reads
from ledger.runtime import tune_gc_for_throughput
from ledger.service import LedgerService, Received
from ledger.simulate import PRODUCER, START, Workload, generate, generate_dense, plans
from ledger.store import tables, view_tables
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.store.verify import verify
from projectors import catalog, runner
from schemas.codec import DecodeError, default_codec

__all__ = [
    "downloads",
    "order_reads",
    "spreadsheets",
    "view_tables",
    "BaselineClock",
    "catalog",
    "tune_gc_for_throughput",
    "CONSUMER_DEFAULTS",
    "PRODUCER",
    "START",
    "ClickRecorded",
    "ConsumerConfig",
    "ConsumerLoop",
    "ConsumerMetrics",
    "DecodeError",
    "Event",
    "InMemoryLedger",
    "JournalEntry",
    "LedgerService",
    "OrderLine",
    "OrderPlaced",
    "PlanPublished",
    "Posting",
    "Publisher",
    "Received",
    "SharerEnrolled",
    "Store",
    "Topics",
    "Workload",
    "configure_logging",
    "default_pg_url",
    "default_codec",
    "dump_event",
    "generate",
    "generate_dense",
    "hash_token",
    "merchant_account",
    "open_store",
    "plans",
    "balances",
    "portable",
    "runner",
    "sharer_account",
    "split_lines",
    "tables",
    "verify",
]

REPO = Path(__file__).resolve().parents[1]


def portable(text: str) -> str:
    """``text`` without this machine's paths (the checkout, the venv): results are
    committed, and a path names one machine, not the run."""
    return text.replace(sys.prefix, "<venv>").replace(f"{REPO}/", "")


RESULTS = REPO / "bench" / "results"
LEDGER_BIN = Path(sys.executable).with_name("ledger")
DEFAULT_KAFKA = "127.0.0.1:19092"
POLL_S = 0.05

Ends = dict[tuple[str, int], int]  # (topic, partition) -> end offset


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- Kafka principals ----------------------------------------------------------------------
# The broker is secured (docs/security.md): every client authenticates as a role of the
# LEDGER_KAFKA_CREDENTIALS file, which deploy/test.sh exports (no file: no SASL).


def auth(role: str) -> dict[str, Any]:
    """SASL settings of ``role`` (admin, publisher, finance, consumer)."""
    return client_options(load_settings(), role)


def publisher_auth() -> dict[str, dict[str, Any]]:
    """A Publisher's principals, as `ledger produce` has them: buyer activity as the
    publisher, barrier events as finance."""
    return {"orders": auth("publisher"), "accounts": auth("finance")}


def scratch_topics(stem: str) -> Topics:
    """Topic names under the scratch prefixes a test broker grants (ledger/kafka/acls.py)."""
    return Topics(
        orders=f"{SCRATCH_TOPICS.orders}{stem}",
        accounts=f"{SCRATCH_TOPICS.accounts}{stem}",
        dead_letters=f"{SCRATCH_TOPICS.dead_letters}{stem}",
    )


# --- PostgreSQL ----------------------------------------------------------------------------


def deploy_setting(name: str) -> str | None:
    """A setting deploy/postgres/start.sh wrote to <cache>/postgres.env (the role URLs)."""
    cache = Path(os.environ.get("LEDGER_CACHE_DIR") or REPO / ".cache")
    path = Path(os.environ.get("LEDGER_TEST_PG_ENV_FILE") or cache / "postgres.env")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    return next((line.split("=", 1)[1] for line in lines if line.startswith(f"{name}=")), None)


def default_pg_url() -> str:
    """The URL scratch databases are created from: the test admin's (never a superuser)."""
    url = (
        os.environ.get("LEDGER_BENCH_PG_URL")
        or os.environ.get("LEDGER_TEST_PG_URL")
        or deploy_setting("LEDGER_TEST_PG_URL")
    )
    if not url:
        raise SystemExit("no PostgreSQL: run deploy/postgres/start.sh or set LEDGER_BENCH_PG_URL")
    return url


def role_url(env: str, setting: str) -> str:
    """The owner's (``env``/LEDGER_MIGRATE_DB_URL) or the service's URL of the deploy
    cluster, to point at a scratch database with ``make_url(...).set(database=...)``."""
    url = os.environ.get(env) or deploy_setting(setting)
    if not url:
        raise SystemExit(f"set {env} (deploy/test.sh exports it) or run deploy/postgres/start.sh")
    return url


@contextmanager
def fresh_database(
    pg_url: str, prefix: str = "bench_", *, keep: bool = False, ledger: bool = False
) -> Iterator[str]:
    """A new database beside ``pg_url``'s (never the ledger database itself), owned by
    the deploy cluster's owner role and dropped afterwards with its sessions unless
    ``keep``. The tests use it too. Yields the owner's URL of the empty database, or with
    ``ledger`` the service role's URL once the owner has migrated it and granted the
    service its privileges, as `ledger migrate` does in production."""
    name = unique(prefix).replace("-", "_")
    owner = make_url(role_url("LEDGER_TEST_PG_OWNER_URL", "LEDGER_MIGRATE_DB_URL"))
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{owner.username}"'))
        try:
            owner_url = owner.set(database=name).render_as_string(hide_password=False)
            yield migrate_for_service(owner_url) if ledger else owner_url
        finally:
            if not keep:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def migrate_for_service(owner_url: str) -> str:
    """Migrate the database of ``owner_url`` as its owner, grant the deploy cluster's
    service role, and return the service role's URL of that database."""
    from ledger.store.roles import grant_service

    service = make_url(role_url("LEDGER_TEST_PG_SERVICE_URL", "LEDGER_DB_URL"))
    store = open_store(owner_url)
    try:
        with store.begin() as conn:
            grant_service(conn, str(service.username))
    finally:
        store.dispose()
    database = make_url(owner_url).database
    return service.set(database=database).render_as_string(hide_password=False)


# --- Kafka ---------------------------------------------------------------------------------


def wait_for_partitions(bootstrap: str, want: dict[str, int], timeout: float = 30.0) -> None:
    """Poll metadata until every topic in ``want`` has that many partitions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        deadline = time.monotonic() + timeout
        while True:
            seen = {name: len(consumer.partitions_for_topic(name) or ()) for name in want}
            if seen == want:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready after {timeout}s: want {want}, see {seen}")
            time.sleep(POLL_S)
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic_names: Iterable[str]) -> Ends:
    """The end offset of every partition of ``topic_names`` (what has been produced)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        tps = [
            TopicPartition(name, p)
            for name in topic_names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        return {(tp.topic, tp.partition): o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def applied_offsets(service: LedgerService, group: str) -> Ends | None:
    """The group's offsets stored in the ledger database (None if unreachable)."""
    try:
        return service.stored_offsets(group)
    except OperationalError:
        return None


def wait_until_applied(
    store: Store,
    group: str,
    ends: Ends,
    timeout: float = 120.0,
    alive: Callable[[], None] | None = None,
) -> None:
    """Poll the offsets stored in the ledger database for ``group`` until each partition's
    reaches ``ends``. ``alive`` is called on every poll and may raise to fail fast (e.g.
    the consumer process died). Raises TimeoutError at the deadline, with the progress."""
    service = LedgerService(store)
    deadline = time.monotonic() + timeout
    while True:
        stored = applied_offsets(service, group)
        behind = (
            {k: (stored.get(k, 0), v) for k, v in ends.items() if stored.get(k, 0) < v}
            if stored is not None
            else {"database": "unreachable"}
        )
        if not behind:
            return
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"group {group} not caught up after {timeout}s: "
                f"(stored, end) per partition {behind}"
            )
        time.sleep(POLL_S)


# --- baselines -----------------------------------------------------------------------------


class BaselineClock:
    """The timing every baseline reports: the whole run, and its orders phase, from the
    first buyer event on (the plans and enrollments before it are setup, not timed)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.orders_from = 0.0
        self.finished = 0.0

    def first_buyer_event(self, event: Event) -> bool:
        """True for the first click or order: the setup is over."""
        return not self.orders_from and isinstance(event, ClickRecorded | OrderPlaced)

    def start_orders(self) -> None:
        self.orders_from = time.perf_counter()

    @property
    def in_orders(self) -> bool:
        return bool(self.orders_from)

    def stop(self) -> None:
        self.finished = time.perf_counter()

    def figures(self, events: int, orders: int, postings: int) -> dict[str, Any]:
        return {
            "events": events,
            "orders": orders,
            "postings": postings,
            "seconds": round(self.finished - self.started, 3),
            "orders_seconds": round(self.finished - self.orders_from, 3),
        }


# --- consumer processes --------------------------------------------------------------------


class ConsumerProcess:
    """``ledger consume`` as a subprocess (one consumer of a group), logs to a file."""

    def __init__(
        self, db_url: str, bootstrap: str, group: str, topics: Topics, log_path: Path
    ) -> None:
        args = [str(LEDGER_BIN), "consume", "--db", db_url, "--bootstrap", bootstrap]
        args += ["--group", group, "--topic-orders", topics.orders]
        args += ["--topic-accounts", topics.accounts]
        env = {**os.environ, "LEDGER_LOG_FORMAT": "json", "LEDGER_LOG_LEVEL": "warning"}
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise SystemExit(f"consumer exited ({self.proc.returncode}):\n" + "\n".join(tail))

    def terminate(self, timeout: float = 60.0) -> None:
        """SIGTERM (the consumer finishes its batch), SIGKILL if it does not stop."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


# --- memory --------------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB from /proc (psutil is not a dependency); None once gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class RssSampler:
    """Samples the RSS of some processes and a progress counter every ``every`` seconds
    in a daemon thread: rows of (seconds since start, progress, total RSS KiB)."""

    def __init__(
        self, pids: Sequence[int], progress: Callable[[], int], every: float = 0.5
    ) -> None:
        self.pids = list(pids)
        self.progress = progress
        self.every = every
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self._started = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            sizes = [rss_kib(pid) for pid in self.pids]
            try:
                done = self.progress()
            except Exception:  # noqa: BLE001 - a missed sample is not a failed benchmark
                continue
            self.samples.append(
                (round(time.perf_counter() - self._started, 2), done, sum(s or 0 for s in sizes))
            )

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU time (user + system, all threads) of ``pid`` from /proc; with ``children``,
    also what its exited children used (the PostgreSQL backends that have ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = int(fields[11]) + int(fields[12])  # utime, stime
    waited = int(fields[13]) + int(fields[14]) if children else 0  # cutime, cstime
    return (own + waited) / _TICKS


def _processes() -> Iterator[tuple[int, int, list[str]]]:
    """(pid, parent pid, argv) of every process we can read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        yield int(entry.name), ppid, [a.decode(errors="replace") for a in argv if a]


def _ours(servers: list[tuple[int, list[str]]]) -> list[int]:
    """The servers whose command line names this checkout's cache directory (where
    deploy/ starts them): on a machine shared with other checkouts' servers, theirs must
    not be counted. Every server when none is ours (servers started elsewhere)."""
    cache = str(Path(os.environ.get("LEDGER_CACHE_DIR") or REPO / ".cache").resolve())
    mine = [pid for pid, argv in servers if any(cache in arg for arg in argv)]
    return mine or [pid for pid, _ in servers]


def server_cpu() -> dict[str, float]:
    """CPU seconds used so far by the Kafka broker and by the PostgreSQL cluster (the
    postmaster, its live children and the children that have exited)."""
    procs = list(_processes())
    brokers = _ours([(pid, argv) for pid, _, argv in procs if "kafka.Kafka" in argv])
    kafka = sum(cpu_seconds(pid) for pid in brokers)
    masters = set(
        _ours(
            [
                (pid, argv)
                for pid, _, argv in procs
                if argv and argv[0].endswith("/postgres") and "-D" in argv
            ]
        )
    )
    postgres = sum(cpu_seconds(pid, children=True) for pid in masters) + sum(
        cpu_seconds(pid) for pid, ppid, _ in procs if ppid in masters
    )
    return {"kafka_s": kafka, "postgres_s": postgres}


def summarize_rss(samples: list[tuple[float, int, int]], records: int) -> dict[str, Any]:
    """RSS after warm-up (once 10% of ``records`` were applied: start-up, imports and the
    first batches are behind) against the end: the mean of the last quarter of those
    samples over the mean of the first quarter (target: within ±20%)."""
    warm = [s for s in samples if s[2] and s[1] >= records // 10]
    if len(warm) < 2:
        return {"samples": samples}
    quarter = max(1, len(warm) // 4)
    early = sum(s[2] for s in warm[:quarter]) / quarter
    late = sum(s[2] for s in warm[-quarter:]) / quarter
    return {
        "first_mib": round(warm[0][2] / 1024, 1),
        "last_mib": round(warm[-1][2] / 1024, 1),
        "max_mib": round(max(s[2] for s in samples) / 1024, 1),
        "late_vs_early": round(late / early, 3),
        "samples": samples,
    }


def steady_rate(
    samples: list[tuple[float, int, int]], records: int, seconds: float
) -> float | None:
    """Records/s from the first sample with records applied to the end: the rate once the
    processes have started and joined the group (start-up excluded)."""
    first = next((s for s in samples if s[1] > 0), None)
    if first is None or seconds <= first[0] or first[1] > records // 2:
        return None  # too short a run to see a steady state
    return (records - first[1]) / (seconds - first[0])
