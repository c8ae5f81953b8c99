"""The PostgreSQL cluster from deploy/postgres is real: a fresh database round-trips a row,
the server is PostgreSQL 15 or newer, and the ``ledger`` role may disable triggers."""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text


def test_fresh_database_round_trips_a_row(fresh_pg_url: str) -> None:
    engine = create_engine(fresh_pg_url)
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
    assert int(match.group(1)) >= 15
    # Tamper tests disable the journal's append-only triggers, which needs a superuser.
    assert superuser is True


def test_fresh_databases_are_distinct_and_empty(fresh_pg_url: str, pg_url: str) -> None:
    assert fresh_pg_url != pg_url
    engine = create_engine(fresh_pg_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0
