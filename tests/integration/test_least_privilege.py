"""Least privilege on PostgreSQL: the schema is migrated by its owner,
the service runs as a role that can only SELECT and INSERT (plus UPDATE/DELETE where state
is mutable), and that role can neither change the journal, nor switch its triggers off,
nor create objects, nor read other sessions' queries. The service commands connect as
that role by default (LEDGER_DB_URL; only `migrate` uses LEDGER_MIGRATE_DB_URL) and
refuse a superuser or an owner unless --allow-owner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from ledger.cli import main
from ledger.store import schema, tables
from ledger.store.errors import StoreError
from ledger.store.opening import open_store
from ledger.store.verify import verify
from tests.support.api import auth, serving
from tests.support.roles import PgRoles
from tests.support.tamper import build_ledger
from tests.support.worked_example import setup as worked_example


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
    return next(c.name for c in schema.metadata.tables[table].columns)


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
            "CREATE TABLE public.intruder (x int)",
            "CREATE TEMP TABLE intruder (x int)",
            "CREATE SCHEMA intruder",
            "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "SET ROLE ledger_owner",
            "SELECT setval('ledger_entries_seq', 1)",
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


def test_the_service_role_cannot_read_other_sessions_queries(pg_roles: PgRoles) -> None:
    _migrate(pg_roles)
    owner = create_engine(pg_roles.owner)
    service = create_engine(pg_roles.service)
    try:
        with owner.connect() as busy:
            busy.execute(text("SELECT 'owner-secret-query' AS marker")).all()
            with service.connect() as conn:
                seen = (
                    conn.execute(
                        text(
                            "SELECT query FROM pg_stat_activity WHERE usename = 'ledger_owner' "
                            "AND datname = current_database()"
                        )
                    )
                    .scalars()
                    .all()
                )
                assert seen, "the owner's session should be listed"
                assert not any("owner-secret-query" in (q or "") for q in seen)
            # the owner sees its own query: the probe could have seen it
            with owner.connect() as conn:
                own = (
                    conn.execute(
                        text(
                            "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                            "AND usename = 'ledger_owner' AND datname = current_database()"
                        )
                    )
                    .scalars()
                    .all()
                )
                assert any("owner-secret-query" in (q or "") for q in own)
    finally:
        owner.dispose()
        service.dispose()


def _events_file(tmp_path: Path) -> Path:
    from ledger.jsonform import event_to_json

    path = tmp_path / "in.jsonl"
    events = [r.incoming.event for r in worked_example().results]
    path.write_text("".join(json.dumps(event_to_json(e)) + "\n" for e in events), encoding="utf-8")
    return path


SERVICE_COMMANDS = [
    ["ingest", "EVENTS"],
    ["consume", "--bootstrap", "127.0.0.1:1"],  # refused before Kafka is tried
    ["serve", "--port", "0"],  # refused before it listens
]


def _invoke(args: list[str], events: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    argv = [str(events) if a == "EVENTS" else a for a in args]
    return CliRunner().invoke(main, argv, env=env)


@pytest.mark.parametrize("command", SERVICE_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("role", ["owner", "admin"])
def test_service_commands_refuse_a_role_that_owns_the_ledger(
    pg_roles: PgRoles, tmp_path: Path, command: list[str], role: str
) -> None:
    _migrate(pg_roles)
    url = getattr(pg_roles, role)  # the owner, or the test admin (a member of the owner)
    result = _invoke([*command, "--db", url], _events_file(tmp_path))
    assert result.exit_code == 1, result.output
    assert "refusing to run the service as" in result.output
    assert "owns the database" in result.output and "--allow-owner" in result.output
    assert "Traceback" not in result.output
    store = open_store(pg_roles.service, read_only=True)
    try:
        with store.read() as conn:  # nothing was written
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0
    finally:
        store.dispose()


def test_allow_owner_runs_with_a_loud_warning(pg_roles: PgRoles, tmp_path: Path) -> None:
    _migrate(pg_roles)
    result = _invoke(
        ["ingest", "EVENTS", "--db", pg_roles.owner, "--allow-owner"], _events_file(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "WARNING: running the service as ledger_owner" in result.output
    assert "applied" in result.output


def test_the_service_commands_default_to_the_service_role(
    pg_roles: PgRoles, tmp_path: Path
) -> None:
    """As the settings file deploy/postgres/start.sh writes: LEDGER_DB_URL is the service's,
    LEDGER_MIGRATE_DB_URL the owner's; no --db anywhere."""
    env = {"LEDGER_DB_URL": pg_roles.service, "LEDGER_MIGRATE_DB_URL": pg_roles.owner}
    migrated = CliRunner().invoke(main, ["migrate"], env=env)
    assert migrated.exit_code == 0, migrated.output
    assert "granted service privileges to ledger_service" in migrated.output
    ingested = _invoke(["ingest", "EVENTS"], _events_file(tmp_path), env)
    assert ingested.exit_code == 0, ingested.output
    assert "WARNING" not in ingested.output
    balances = CliRunner().invoke(main, ["balances", "--json"], env=env)
    assert balances.exit_code == 0 and json.loads(balances.output), balances.output
    # the same default pointed at the owner is refused: the default decides the role
    owner_env = {**env, "LEDGER_DB_URL": pg_roles.owner}
    refused = _invoke(["ingest", "EVENTS"], _events_file(tmp_path), owner_env)
    assert refused.exit_code == 1 and "refusing to run the service" in refused.output


def test_serve_runs_the_api_as_the_service_role(fresh_pg_url: str, tmp_path: Path) -> None:
    """A real `ledger serve` on PostgreSQL as the service role, as in production: reads,
    a submitted event applied, the views caught up (UPDATE on view tables only)."""
    import dataclasses

    import httpx

    from ledger.domain.events import ClickRecorded
    from ledger.jsonform import event_to_json

    assert "ledger_service" in fresh_pg_url
    ingested = _invoke(["ingest", "EVENTS", "--db", fresh_pg_url], _events_file(tmp_path))
    assert ingested.exit_code == 0, ingested.output
    click = next(
        r.incoming.event
        for r in worked_example().results
        if isinstance(r.incoming.event, ClickRecorded)
    )
    another = dataclasses.replace(click, event_id="e-click-again", click_id="C-again")
    with serving(fresh_pg_url) as base, httpx.Client(base_url=base, timeout=10) as http:
        balances = http.get("/api/v1/balances", headers=auth("finance"))
        assert balances.status_code == 200, balances.text
        assert balances.json()["items"], balances.text
        posted = http.post("/api/v1/events", json=event_to_json(another), headers=auth("publisher"))
        assert posted.status_code in (200, 201, 202), posted.text
        assert posted.json()["outcome"] == "applied", posted.text
    store = open_store(fresh_pg_url, read_only=True)
    try:
        with store.read() as conn:
            ids = conn.execute(text("SELECT event_id FROM events")).scalars().all()
    finally:
        store.dispose()
    assert "e-click-again" in ids
