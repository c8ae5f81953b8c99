"""deploy/postgres/start.sh: the cluster's roles are least privilege. The URLs it
prints say which role is which, none of them is a superuser, the superuser `postgres` is
no network login, and a cluster made by the older script (role `ledger` a SUPERUSER with
password `ledger`, owning database `ledger`) is migrated in place."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ledger.store.roles import privileged_role

REPO = Path(__file__).resolve().parents[2]
START = REPO / "deploy" / "postgres" / "start.sh"
STOP = REPO / "deploy" / "postgres" / "stop.sh"


def _run(script: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _settings(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _printed(output: str) -> dict[str, str]:
    """'URL (service, for consume/ingest/serve): postgresql+...' -> {'service': url}."""
    return dict(re.findall(r"^URL \((\w+)[^)]*\): (\S+)$", output, re.MULTILINE))


def _one(url: str, sql: str) -> object:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _privilege(url: str) -> str | None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return privileged_role(conn)
    finally:
        engine.dispose()


def _refused(url: str) -> bool:
    try:
        _one(url, "SELECT 1")
    except OperationalError as exc:
        return "authentication failed" in str(exc) or "no password" in str(exc)
    return False


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _deploy_env() -> dict[str, str]:
    """The environment of the cluster the suite runs on (deploy/test.sh exported it)."""
    env_file = Path(os.environ["LEDGER_TEST_PG_ENV_FILE"])
    port = make_url(os.environ["LEDGER_TEST_PG_URL"]).port
    return {**os.environ, "PG_PORT": str(port), "LEDGER_CACHE_DIR": str(env_file.parent)}


def test_start_says_which_url_is_which_and_no_login_is_a_superuser() -> None:
    env = _deploy_env()
    output = _run(START, env)  # already running: idempotent, prints the URLs again
    env_file = Path(os.environ["LEDGER_TEST_PG_ENV_FILE"])
    settings = _settings(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # passwords inside
    printed = _printed(output)
    assert "service, for consume/ingest/serve" in output
    assert "owner, for ledger migrate" in output
    assert printed["service"] == _masked(settings["LEDGER_DB_URL"])
    assert printed["owner"] == _masked(settings["LEDGER_MIGRATE_DB_URL"])
    assert "***" in printed["service"] and "***" in printed["owner"]  # not on the terminal
    service, owner = settings["LEDGER_DB_URL"], settings["LEDGER_MIGRATE_DB_URL"]

    assert _privilege(service) is None  # least privilege: no superuser, owns nothing
    assert (
        _privilege(owner)
        == "ledger_owner, which owns the database, owns the schema and owns ledger tables"
    )
    for url in (service, owner, settings["LEDGER_TEST_PG_URL"]):
        assert _one(url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
    supers = _one(owner, "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolsuper")
    assert supers == "postgres"  # the bootstrap role only, over the unix socket
    assert (
        _one(owner, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'ledger'")
        == "ledger_owner"
    )
    # the service role may use database `ledger` right away (start.sh ran `ledger migrate`)
    assert _one(service, "SELECT count(*) FROM entries") is not None

    where = make_url(service)
    for user, password in (("postgres", ""), ("postgres", "postgres"), ("ledger", "ledger")):
        assert _refused(where.set(username=user, password=password).render_as_string(False))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def own_cluster() -> Iterator[dict[str, str]]:
    """A second cluster of our own (a cache dir the cluster's OS user can reach, a free
    port), stopped and removed afterwards."""
    cache = Path(tempfile.mkdtemp(prefix="pg-old-"))
    cache.chmod(0o755)
    env = {**os.environ, "PG_PORT": str(_free_port()), "LEDGER_CACHE_DIR": str(cache)}
    try:
        _run(START, env)
        yield env
    finally:
        subprocess.run(["bash", str(STOP)], env=env, capture_output=True, timeout=120, check=False)
        subprocess.run(["rm", "-rf", str(cache)], check=False)


def _as_bootstrap_superuser(env: dict[str, str], sql: str) -> None:
    """SQL as `postgres` over the unix socket, the way start.sh itself does it."""
    script = (
        "source deploy/postgres/common.sh; pg_resolve_root; pg_find_bin; "
        "((EUID == 0)) || PG_OS_USER=$(id -un); "
        'as_pg "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d ledger '
        '-v ON_ERROR_STOP=1 -qAtX -c "$1"'
    )
    done = subprocess.run(
        ["bash", "-c", script, "sql", sql],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_cluster_of_the_older_script_is_migrated_in_place(own_cluster: dict[str, str]) -> None:
    env = own_cluster
    port = env["PG_PORT"]
    old = f"postgresql+psycopg2://ledger:ledger@127.0.0.1:{port}/ledger"
    # what the older start.sh left: `ledger` a superuser with password `ledger`, owning
    # database `ledger` and the tables it migrated
    _as_bootstrap_superuser(
        env,
        "CREATE ROLE ledger LOGIN SUPERUSER PASSWORD 'ledger'; "
        "ALTER DATABASE ledger OWNER TO ledger; "
        "CREATE TABLE legacy (x int); ALTER TABLE legacy OWNER TO ledger; "
        "ALTER TABLE entries OWNER TO ledger",
    )
    assert _one(old, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is True

    output = _run(START, env)

    assert "migrated: role ledger" in output and "now NOSUPERUSER NOLOGIN" in output
    assert "migrated: database ledger and its objects now belong to ledger_owner" in output
    assert _refused(old)
    settings = _settings(Path(env["LEDGER_CACHE_DIR"]) / "postgres.env")
    owner, service = settings["LEDGER_MIGRATE_DB_URL"], settings["LEDGER_DB_URL"]
    assert _one(owner, "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolsuper") == "postgres"
    assert (
        _one(owner, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'ledger'")
        == "ledger_owner"
    )
    owners = _one(
        owner,
        "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'",
    )
    assert owners == "ledger_owner"
    assert _privilege(service) is None
    assert _one(service, "SELECT count(*) FROM entries") == 0
    # and again: nothing left to migrate, nothing said about it
    again = _run(START, env)
    assert "migrated" not in again
