"""Shared fixtures: the real Kafka broker and PostgreSQL cluster started by deploy/test.sh.

Integration tests never skip: when the servers' addresses are not in the environment the
fixtures fail with a message saying how to run the suite.

- ``kafka_bootstrap`` (session): ``host:port`` of the broker (``LEDGER_TEST_KAFKA_BOOTSTRAP``).
- ``new_topic`` (function): factory ``new_topic(partitions=1, kind="orders") -> str``; the
  topic exists with a leader for every partition when it returns and is deleted after the
  test. ``kind`` (orders, accounts, dead-letters) puts the name under that scratch prefix,
  which the test broker's ACLs grant as they grant the real topic (ledger/kafka/acls.py).
- ``kafka_auth`` (session): ``kafka_auth(role) -> dict``, the SASL settings of a role of
  ``LEDGER_KAFKA_CREDENTIALS`` (exported by deploy/test.sh: the broker is secured).
- ``pg_url`` (session): SQLAlchemy URL of the cluster's ``ledger`` database as the test
  admin (``LEDGER_TEST_PG_URL``, role ``ledger_test_admin``: creates scratch databases, is
  no superuser).
- ``fresh_pg_url`` (function): a new database, migrated by the owner role, as the service
  role would use it (``ledger_service``, least privilege, as in production); dropped after.
- ``empty_pg_url`` (function): a new, empty database, as its owner (``ledger_owner``).
- ``db_url`` (function, parametrized ``sqlite`` / ``postgres``): a fresh ledger of each
  backend (PostgreSQL: ``fresh_pg_url``); a test that takes it is the backend contract
  suite and runs on both.
- ``pg_roles`` (function): a new, empty database owned by ``ledger_owner``, with the URLs
  of its three roles: ``owner`` (runs migrations), ``service`` (least privilege, what the
  service connects as) and ``admin`` (the test admin, for tampering).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import make_url

# The suite runs the domain as plain Python (and so do the processes it starts), also where
# a compiled build is installed (ledger/compiled.py): some tests patch domain constants,
# which compiled code has inlined. tests/integration/test_compiled_domain.py compares the
# two; LEDGER_COMPILED=on runs the whole suite compiled. Set before ledger is imported.
os.environ.setdefault("LEDGER_COMPILED", "off")

from hypothesis import settings

from tests.support.roles import PgRoles

# A property is about values, never about time: hypothesis' default 200 ms deadline per
# example fails a correct test on a busy machine (CI beside other jobs, the suite under
# stress-ng). A failure prints the blob that reproduces it.
settings.register_profile("ledger", deadline=None, print_blob=True)
settings.load_profile("ledger")

KAFKA_ENV = "LEDGER_TEST_KAFKA_BOOTSTRAP"
PG_ENV = "LEDGER_TEST_PG_URL"
TOPIC_READY_TIMEOUT_MS = 30_000

KAFKA_FIXTURES = {"kafka_bootstrap", "new_topic", "kafka_auth"}
PG_FIXTURES = {"pg_url", "fresh_pg_url", "empty_pg_url", "pg_roles"}


def _required_env(name: str, start_script: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(
            f"{name} is not set: run the suite with deploy/test.sh "
            f"(or start {start_script} and set {name})",
            pytrace=False,
        )
    return value


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
        uses_pg_param = callspec is not None and "postgres" in (
            callspec.params.get("db_url"),
            callspec.params.get("empty_db_url"),
        )
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

    from ledger.kafka.acls import SCRATCH_TOPICS

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


@pytest.fixture
def fresh_pg_url(pg_url: str) -> Iterator[str]:
    """A new database on the test cluster, migrated by its owner; the service role's URL."""
    from bench.support import fresh_database

    with fresh_database(pg_url, prefix="test_", ledger=True) as url:
        yield url


@pytest.fixture
def empty_pg_url(pg_url: str) -> Iterator[str]:
    """A new, empty database on the test cluster; its owner's URL (may migrate, create)."""
    from bench.support import fresh_database

    with fresh_database(pg_url, prefix="test_empty_") as url:
        yield url


@pytest.fixture
def pg_roles(pg_url: str) -> Iterator[PgRoles]:
    """A new, empty database owned by ledger_owner (roles made by deploy/postgres/start.sh)."""
    from bench.support import fresh_database, role_url

    with fresh_database(pg_url, prefix="test_roles_") as owner:
        database = make_url(owner).database
        service = make_url(role_url("LEDGER_TEST_PG_SERVICE_URL", "LEDGER_DB_URL"))
        yield PgRoles(
            admin=make_url(pg_url).set(database=database).render_as_string(hide_password=False),
            owner=owner,
            service=service.set(database=database).render_as_string(hide_password=False),
        )


# --- both backends --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A new, empty database of each backend, as its owner (for migration tests)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("empty_pg_url")


@pytest.fixture(params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh database URL of each backend: the backend contract suite's fixture."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    # Resolved lazily so SQLite-only runs do not need the PostgreSQL cluster.
    return request.getfixturevalue("fresh_pg_url")
