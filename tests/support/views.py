"""Helpers for the view tests: fresh databases per hypothesis example, view snapshots."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.store import view_tables as v
from ledger.store.store import Store

VIEW_TABLES = (v.view_balances, v.view_order_levels, v.view_fee_totals)


def snapshot(store: Store) -> dict[str, list[tuple]]:
    """Every row of every view table, sorted: equal snapshots are equal views."""
    with store.read() as conn:
        return {
            table.name: sorted(tuple(r) for r in conn.execute(select(table)))
            for table in VIEW_TABLES
        }


def url_factory(
    request: pytest.FixtureRequest, tmp_path_factory, prefix: str = "views"
) -> Iterator[Callable[[], str]]:
    """Yields make() -> URL of a fresh database of the backend ``request.param``;
    PostgreSQL databases are dropped at the end."""
    if request.param == "sqlite":
        yield lambda: f"sqlite:///{tmp_path_factory.mktemp(prefix) / 'ledger.sqlite'}"
        return
    pg_url = request.getfixturevalue("pg_url")
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    created: list[str] = []

    def make() -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(pg_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
