"""The migration runs down to nothing and back up again on both backends."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from ledger.store import tables
from ledger.store.opening import alembic_config, open_store, run_migrations
from tests.support.roles import as_owner


def test_downgrade_to_base_then_upgrade_again(db_url: str) -> None:
    store = open_store(as_owner(db_url))  # migrations are the owner's
    config = alembic_config()
    with store.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with store.engine.connect() as conn:
        left = set(inspect(conn).get_table_names()) & set(tables.metadata.tables)
    assert left == set()
    run_migrations(store)
    with store.engine.connect() as conn:
        assert set(tables.metadata.tables) <= set(inspect(conn).get_table_names())
    store.dispose()
