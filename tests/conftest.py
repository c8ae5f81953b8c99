"""Shared fixtures: the real Kafka broker and PostgreSQL cluster started by deploy/test.sh.

Integration tests never skip: when the servers' addresses are not in the environment the
fixtures fail with a message saying how to run the suite.

- ``kafka_bootstrap`` (session): ``host:port`` of the broker (``LEDGER_TEST_KAFKA_BOOTSTRAP``).
- ``new_topic`` (function): factory ``new_topic(partitions=1, kind="orders") -> str``; the
  topic exists with a leader for every partition when it returns and is deleted after the
  test. ``kind`` (orders, accounts, dead-letters) puts the name under that scratch prefix,
  which the test broker's ACLs grant as they grant the real topic (ledger/kafka_acls.py).
- ``kafka_auth`` (session): ``kafka_auth(role) -> dict``, the SASL settings of a role of
  ``LEDGER_KAFKA_CREDENTIALS`` (exported by deploy/test.sh: the broker is secured).
- ``pg_url`` (session): SQLAlchemy URL of the cluster's ``ledger`` database
  (``LEDGER_TEST_PG_URL``).
- ``fresh_pg_url`` (function): URL of a new, empty database on that cluster, dropped after.
- ``db_url`` (function, parametrized ``sqlite`` / ``postgres``): a fresh database of each
  backend; a test that takes it is the backend contract suite and runs on both.
- ``pg_roles`` (function): a new, empty database owned by ``ledger_owner``, with the URLs
  of its three roles: ``owner`` (runs migrations), ``service`` (least privilege, what the
  service connects as) and ``admin`` (the superuser ``ledger``, for tampering).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.support.roles import PgRoles

KAFKA_ENV = "LEDGER_TEST_KAFKA_BOOTSTRAP"
PG_ENV = "LEDGER_TEST_PG_URL"
TOPIC_READY_TIMEOUT_MS = 30_000

KAFKA_FIXTURES = {"kafka_bootstrap", "new_topic", "kafka_auth"}
PG_FIXTURES = {"pg_url", "fresh_pg_url", "pg_roles"}


def _required_env(name: str, start_script: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(
            f"{name} is not set: run the suite with deploy/test.sh "
            f"(or start {start_script} and set {name})",
            pytrace=False,
        )
    return value


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0.12 loads its protocol schemas with a deprecated importlib API.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use (``-m kafka`` selects them); nothing is skipped."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & KAFKA_FIXTURES:
            item.add_marker(pytest.mark.kafka)
        callspec = getattr(item, "callspec", None)
        uses_pg_param = callspec is not None and callspec.params.get("db_url") == "postgres"
        if names & PG_FIXTURES or uses_pg_param:
            item.add_marker(pytest.mark.postgres)


# --- Kafka ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _required_env(KAFKA_ENV, "deploy/kafka/start.sh")


@pytest.fixture(scope="session")
def kafka_auth(kafka_bootstrap: str) -> Callable[[str], dict[str, Any]]:
    from bench.support import auth

    _required_env("LEDGER_KAFKA_CREDENTIALS", "deploy/kafka/start.sh")
    return auth


@pytest.fixture(scope="session")
def _kafka_admin(
    kafka_bootstrap: str, kafka_auth: Callable[[str], dict[str, Any]]
) -> Iterator[Any]:
    # Imported here, once pytest's warning filters are in force (see pytest_configure).
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=kafka_bootstrap, client_id="ledger-tests", **kafka_auth("admin")
    )
    yield admin
    admin.close()


@pytest.fixture
def new_topic(_kafka_admin: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory for uniquely named topics, ready (every partition led) when returned."""
    created: list[str] = []
    # Topic names allow [A-Za-z0-9._-]; the test's name helps when reading broker logs.
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60]

    from ledger.kafka_acls import SCRATCH_TOPICS

    prefixes = {
        "orders": SCRATCH_TOPICS.orders,
        "accounts": SCRATCH_TOPICS.accounts,
        "dead-letters": SCRATCH_TOPICS.dead_letters,
    }

    def make(partitions: int = 1, kind: str = "orders") -> str:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        name = f"{prefixes[kind]}{stem}-{uuid.uuid4().hex[:10]}"
        _kafka_admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
        created.append(name)
        # Creation is acknowledged before leaders are elected; poll metadata to a deadline.
        _kafka_admin.wait_for_topics([name], timeout_ms=TOPIC_READY_TIMEOUT_MS)
        return name

    yield make
    from kafka.errors import UnknownTopicOrPartitionError

    if created:
        with contextlib.suppress(UnknownTopicOrPartitionError):  # deleted by the test
            _kafka_admin.delete_topics(created)


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _required_env(PG_ENV, "deploy/postgres/start.sh")


@pytest.fixture(scope="session")
def _pg_admin(pg_url: str) -> Iterator[Engine]:
    # AUTOCOMMIT: CREATE/DROP DATABASE cannot run inside a transaction block.
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_pg_url(pg_url: str, _pg_admin: Engine) -> Iterator[str]:
    """A new empty database on the test cluster; dropped (sessions and all) afterwards."""
    name = _unique("test_")
    with _pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with _pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_roles(pg_url: str, _pg_admin: Engine) -> Iterator[PgRoles]:
    """A new database owned by ledger_owner (roles made by deploy/postgres/start.sh)."""
    name = _unique("test_roles_")
    with _pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER ledger_owner'))
    base = make_url(pg_url).set(database=name)

    def as_role(role: str) -> str:
        return base.set(username=role, password=role).render_as_string(hide_password=False)

    try:
        yield PgRoles(
            admin=base.render_as_string(hide_password=False),
            owner=as_role("ledger_owner"),
            service=as_role("ledger_service"),
        )
    finally:
        with _pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- both backends --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh database URL of each backend: the backend contract suite's fixture."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    # Resolved lazily so SQLite-only runs do not need the PostgreSQL cluster.
    return request.getfixturevalue("fresh_pg_url")
