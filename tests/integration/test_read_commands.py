"""Read commands never write: ``verify``, ``balances``, ``dead-letters``
and ``parked`` neither create a file nor a table nor migrate; a missing ledger is a
one-line error with a non-zero exit."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from ledger.store.opening import alembic_config, open_store
from tests.support.cli import one_line_error, run
from tests.support.tamper import build_ledger

READS = (["verify"], ["balances"], ["dead-letters"], ["parked"], ["verify", "--json"])


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_mistyped_path_is_an_error_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "ledgr.sqlite"
    one_line_error(run(*args, "--db", f"sqlite:///{missing}"), "does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_another_database_is_not_turned_into_a_ledger(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    one_line_error(run(*args, "--db", f"sqlite:///{path}"), "no ledger")
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert names == ["notes"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_in_memory_and_random_bytes_are_errors(tmp_path: Path) -> None:
    one_line_error(run("verify", "--db", "sqlite://"), "sqlite:///PATH")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(bytes(range(256)) * 40)
    one_line_error(run("balances", "--db", f"sqlite:///{junk}"), "not a database")


def test_an_older_schema_is_an_error_not_a_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    store = open_store(url)
    config = alembic_config()
    with store.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    store.dispose()
    for args in READS:
        one_line_error(run(*args, "--db", url), "revision 0002", "ledger migrate")
    with sqlite3.connect(tmp_path / "old.sqlite") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]


def test_reads_leave_a_ledger_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = open_store(f"sqlite:///{path}")
    build_ledger(store, orders=10)
    store.dispose()  # the last connection checkpoints the WAL into the file
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for args in READS:
        assert run(*args, "--db", f"sqlite:///{path}").exit_code == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_an_empty_postgres_database_stays_empty(empty_pg_url: str, args: list[str]) -> None:
    one_line_error(run(*args, "--db", empty_pg_url), "no ledger")
    engine = create_engine(empty_pg_url)
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
            assert conn.execute(text("SELECT count(*) FROM pg_sequences")).scalar() == 0
    finally:
        engine.dispose()
