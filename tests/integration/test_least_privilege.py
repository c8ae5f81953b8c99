"""Least privilege on PostgreSQL (issue 13): the schema is migrated by its owner, the
service runs as a role that can only SELECT and INSERT (plus UPDATE/DELETE where state is
mutable), and that role can neither change the journal nor switch its triggers off."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from ledger.cli import main
from ledger.store import tables
from ledger.store.errors import StoreError
from ledger.store.opening import open_store
from ledger.store.verify import verify
from tests.support.roles import PgRoles
from tests.support.tamper import build_ledger


def _migrate(roles: PgRoles) -> None:
    result = CliRunner().invoke(main, ["migrate", "--db", roles.owner, "--grant", "ledger_service"])
    assert result.exit_code == 0, result.output


def test_the_service_role_refuses_to_run_on_an_unmigrated_database(pg_roles: PgRoles) -> None:
    with pytest.raises(StoreError, match="ledger migrate"):
        open_store(pg_roles.service)
    result = CliRunner().invoke(main, ["verify", "--db", pg_roles.service])
    assert result.exit_code == 1 and "no ledger" in result.output


def test_the_service_role_runs_the_ledger(pg_roles: PgRoles) -> None:
    _migrate(pg_roles)
    store = open_store(pg_roles.service)
    try:
        build_ledger(store)  # every write path: entries, events, state, parked, heads
        assert verify(store).ok
    finally:
        store.dispose()
    engine = create_engine(pg_roles.service)
    try:
        with engine.connect() as conn:
            me = conn.execute(
                text(
                    "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
                    "WHERE rolname = current_user"
                )
            ).one()
            owners = set(
                conn.execute(
                    text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
                ).scalars()
            )
    finally:
        engine.dispose()
    assert tuple(me) == (False, False, False, False)
    assert owners == {"ledger_owner"}


def _attacks(table: str) -> list[str]:
    return [
        f"UPDATE {table} SET {_column(table)} = {_column(table)}",
        f"DELETE FROM {table}",
        f"TRUNCATE {table}",
        f"ALTER TABLE {table} DISABLE TRIGGER ALL",
        f"DROP TABLE {table}",
    ]


def _column(table: str) -> str:
    return next(c.name for c in tables.metadata.tables[table].columns)


@pytest.mark.parametrize("table", tables.APPEND_ONLY_TABLES)
def test_the_service_role_cannot_change_append_only_tables(pg_roles: PgRoles, table: str) -> None:
    _migrate(pg_roles)
    store = open_store(pg_roles.service)
    build_ledger(store, orders=5)
    store.dispose()
    engine = create_engine(pg_roles.service)
    try:
        for statement in [
            *_attacks(table),
            "SET session_replication_role = replica",
            "CREATE TABLE intruder (x int)",
            "DROP TRIGGER entries_append_only ON entries",
            "ALTER FUNCTION ledger_refuse_change() RENAME TO nothing",
        ]:
            refused = pytest.raises(DBAPIError, match="permission denied|must be owner")
            with refused, engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    admin = open_store(pg_roles.admin, read_only=True)
    try:
        assert verify(admin).ok
    finally:
        admin.dispose()
