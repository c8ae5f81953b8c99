"""SQLite specifics: engine setup, counters, executemany inserts, append-only triggers.

SQLite has a single writer per database file. Every write transaction starts with
``BEGIN IMMEDIATE`` so it takes the write lock up front: two processes on one file then
queue on ``busy_timeout`` instead of failing with "database is locked" when a deferred
reader tries to upgrade to a writer. Read transactions (``Store.read``) use a plain
deferred ``BEGIN``, which in WAL mode reads a consistent snapshot without blocking writers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL

from ledger.store.backend import BalanceRow
from ledger.store.tables import JOURNAL_TABLES

BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "ledger_read_only"  # execution option: begin a deferred transaction

COUNTER_NAMES = ("entries", "events", "dead_letters", "arrival")

# Not in tables.metadata: PostgreSQL uses sequences instead. One row per counter is no
# contention problem here, because SQLite serialises writers anyway.
COUNTERS_TABLE = "ledger_counters"


class SqliteBackend:
    """The store's Backend on SQLite (ledger/store/backend.py)."""

    name = "sqlite"
    # BEGIN IMMEDIATE already holds the whole database: no row locks to take
    locks_rows = False
    read_options: Mapping[str, Any] = {READ_ONLY_OPTION: True}

    def make_engine(self, url: URL, *, read_only: bool = False, max_overflow: int = 10) -> Engine:
        """Raises ValueError for an in-memory database: it would vanish with the process.
        ``read_only``: the file must exist and is opened with SQLite's ``mode=ro``, so
        nothing can create or change it (SQLite may still add its -wal/-shm reader files
        beside a WAL-mode database that has none)."""
        database = url.database or ""
        if (
            database in ("", ":memory:")
            or url.query.get("mode") == "memory"
            or (database.startswith("file:") and "mode=memory" in database)
        ):
            raise ValueError(
                "an in-memory SQLite database keeps nothing once the command ends: "
                "name a file, sqlite:///PATH (e.g. sqlite:///ledger.sqlite)"
            )
        if read_only:
            url = read_only_url(url)
        # check_same_thread off: pooled connections move between threads (never concurrently).
        engine = create_engine(
            url,
            max_overflow=max_overflow,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module (which would not BEGIN
            # before SELECTs or DDL); SQLAlchemy's "begin" event below issues BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not read_only:  # switching to WAL writes the file header
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine

    def insert(self, table: Table) -> SqliteInsert:
        return sqlite_insert(table)

    def lock_for_migration(self, conn: Connection) -> None:
        """Nothing to do: BEGIN IMMEDIATE already holds the database's write lock."""

    def allocate(self, conn: Connection, name: str, n: int) -> list[int]:
        """Reserve ``n`` ids by advancing the counter row; the write lock is already held."""
        last = conn.execute(
            text(
                f"UPDATE {COUNTERS_TABLE} SET next_value = next_value + :n "
                "WHERE name = :name RETURNING next_value"
            ),
            {"n": n, "name": name},
        ).scalar_one()
        first = int(last) - n
        return list(range(first, first + n))

    def bulk_insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """executemany of one INSERT; a column missing from a row is NULL."""
        columns = [c.name for c in table.columns]
        conn.execute(table.insert(), [{name: row.get(name) for name in columns} for row in rows])

    def balance_shard(self, chain: str) -> str:
        """One balance row per account: SQLite has one writer at a time (tables.py)."""
        return ""

    def add_to_balances(self, conn: Connection, rows: Sequence[BalanceRow]) -> None:
        """Add (account, currency, shard, amount) rows to ``account_balances``."""
        conn.exec_driver_sql(
            "INSERT INTO account_balances (account, currency, shard, balance) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (account, currency, shard) "
            "DO UPDATE SET balance = account_balances.balance + excluded.balance",
            list(rows),
        )


def read_only_url(url: URL) -> URL:
    """``sqlite:///path`` as a read-only URI connection; ValueError if there is no file."""
    return _file_uri(url, "ro")


def existing_file_url(url: URL) -> URL:
    """``sqlite:///path`` as a read-write URI connection that never creates the file
    (SQLite's ``mode=rw``); ValueError if there is no file."""
    return _file_uri(url, "rw")


def _file_uri(url: URL, mode: str) -> URL:
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        raise ValueError(f"not a ledger file: {url.render_as_string()!r} (give sqlite:///PATH)")
    if not Path(path).is_file():
        raise ValueError(
            f"no ledger at {path}: the file does not exist (check --db, or run "
            "`ledger migrate --db sqlite:///PATH` to make a new ledger)"
        )
    uri = "file:" + quote(str(Path(path).resolve()))
    return url.set(database=uri, query={"mode": mode, "uri": "true"})


# --- DDL, used by the migrations -------------------------------------------------------


def upgrade_ddl() -> list[str]:
    statements = [
        f"CREATE TABLE {COUNTERS_TABLE} (name VARCHAR(40) NOT NULL PRIMARY KEY, "
        + "next_value BIGINT NOT NULL)"
    ]
    statements += [
        f"INSERT INTO {COUNTERS_TABLE} (name, next_value) VALUES ('{name}', 1)"
        for name in COUNTER_NAMES
    ]
    for table in JOURNAL_TABLES:
        for op in ("UPDATE", "DELETE"):
            statements.append(trigger_ddl(table, op))
    statements.append(
        "CREATE TRIGGER chain_heads_forward_only BEFORE UPDATE ON chain_heads "
        "WHEN NEW.chain <> OLD.chain OR NEW.chain_seq < OLD.chain_seq BEGIN "
        "SELECT RAISE(ABORT, 'chain_heads only move forward: UPDATE refused'); END"
    )
    statements.append(
        "CREATE TRIGGER chain_heads_no_delete BEFORE DELETE ON chain_heads BEGIN "
        "SELECT RAISE(ABORT, 'chain_heads only move forward: DELETE refused'); END"
    )
    return statements


def trigger_name(table: str, op: str) -> str:
    return f"{table}_no_{op.lower()}"


def trigger_ddl(table: str, op: str) -> str:
    """The trigger refusing ``op`` (UPDATE | DELETE) on journal ``table``.

    RAISE(ABORT) makes the statement fail with SQLITE_CONSTRAINT (an IntegrityError)."""
    return (
        f"CREATE TRIGGER {trigger_name(table, op)} BEFORE {op} ON {table} BEGIN "
        f"SELECT RAISE(ABORT, 'journal table {table} is append-only: {op} refused'); END"
    )


def no_replace_trigger_ddl(table: str, keys: tuple[tuple[str, ...], ...]) -> str:
    """The trigger refusing an INSERT whose key already exists in ``table``.

    ``INSERT OR REPLACE`` (and ``REPLACE INTO``) resolves a key conflict by deleting the
    old row, and SQLite fires no DELETE trigger for that (unless recursive_triggers is on,
    a per-connection setting an attacker would not set). A BEFORE INSERT trigger runs
    before the conflict is resolved, so raising there refuses the replacement. A plain
    duplicate INSERT fails here too, still as an IntegrityError."""
    taken = " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} WHERE "
        + " AND ".join(f"{column} = NEW.{column}" for column in key)
        + ")"
        for key in keys
    )
    return (
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN {taken} BEGIN "
        f"SELECT RAISE(ABORT, 'table {table} is append-only: INSERT over an existing row "
        "refused'); END"
    )


HEADS_FORWARD_ONLY_0004 = (
    "CREATE TRIGGER chain_heads_forward_only BEFORE UPDATE ON chain_heads "
    "WHEN NEW.chain <> OLD.chain OR NEW.chain_seq < OLD.chain_seq "
    "OR NEW.events_seq < OLD.events_seq BEGIN "
    "SELECT RAISE(ABORT, 'chain_heads only move forward: UPDATE refused'); END"
)


def downgrade_ddl() -> list[str]:
    return [f"DROP TABLE IF EXISTS {COUNTERS_TABLE}"]
