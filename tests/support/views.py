"""Helpers for the view tests: fresh databases per hypothesis example, view snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy import select

from ledger.store import view_tables as v
from ledger.store.store import Store
from projectors.catalog import shown

VIEW_TABLES = (v.view_balances, v.view_order_levels, v.view_fee_totals)


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row readers see of every view table (the shown generation, without the
    generation column), sorted: equal snapshots are equal views."""
    with store.read() as conn:
        return {
            table.name: sorted(
                tuple(r)
                for r in conn.execute(
                    select(*(c for c in table.c if c.name != "generation")).where(shown(table))
                )
            )
            for table in VIEW_TABLES
        }


def url_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefix: str = "views"
) -> Iterator[Callable[[], str]]:
    """Yields make() -> URL of a fresh database of the backend ``request.param``;
    PostgreSQL databases are dropped at the end."""
    if request.param == "sqlite":
        yield lambda: f"sqlite:///{tmp_path_factory.mktemp(prefix) / 'ledger.sqlite'}"
        return
    from bench.support import fresh_database

    pg_url = request.getfixturevalue("pg_url")
    with ExitStack() as created:
        # each a ledger migrated by its owner, used as the service role (as in production)
        yield lambda: created.enter_context(fresh_database(pg_url, prefix, ledger=True))
