"""The PostgreSQL cluster from deploy/postgres is real: a fresh database round-trips a row,
the server is PostgreSQL 15 or newer, and no role the project logs in as is a superuser."""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text


def test_fresh_database_round_trips_a_row(empty_pg_url: str) -> None:
    engine = create_engine(empty_pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (id BIGINT PRIMARY KEY, note TEXT NOT NULL)"))
            conn.execute(text("INSERT INTO probe VALUES (:id, :note)"), {"id": 7, "note": "分销"})
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, note FROM probe")).all()
            version = conn.execute(text("SELECT version()")).scalar_one()
            superuser = conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar_one()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(7, "分销")]
    match = re.match(r"PostgreSQL (\d+)", version)
    assert match is not None, version
    # 15+: GRANT SET ON PARAMETER lets the tests' admin lift triggers without a superuser
    assert int(match.group(1)) >= 15
    assert superuser is False  # the owner of a scratch database


def test_fresh_databases_are_distinct_and_empty(empty_pg_url: str, pg_url: str) -> None:
    assert empty_pg_url != pg_url
    engine = create_engine(empty_pg_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0


def test_the_service_fixture_is_a_migrated_ledger_as_the_service_role(fresh_pg_url: str) -> None:
    engine = create_engine(fresh_pg_url)
    try:
        with engine.connect() as conn:
            me = conn.execute(text("SELECT current_user")).scalar_one()
            owners = set(
                conn.execute(
                    text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
                ).scalars()
            )
    finally:
        engine.dispose()
    assert me == "ledger_service"
    assert owners == {"ledger_owner"}
