"""Alembic environment for the ledger schema.

Run programmatically by ``ledger.store.opening.run_migrations``, which passes an open
Connection already inside a transaction (``config.attributes["connection"]``), so the
whole upgrade commits or rolls back as one. For developers, ``alembic -c
ledger/store/alembic.ini …`` works too: the URL then comes from ``LEDGER_DB_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from ledger.store.opening import include_object
from ledger.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("LEDGER_DB_URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set LEDGER_DB_URL to the database to migrate")
    # Through the store's engine, so SQLite gets BEGIN IMMEDIATE and PG the advisory lock.
    from ledger.store.opening import migration_transaction, open_store

    store = open_store(url, migrate=False)
    try:
        with migration_transaction(store) as conn:
            _run(conn)
    finally:
        store.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them online")
run_migrations_online()
