"""The verifier's own store: the reference state a replay of the event log leaves, kept in
a SQLite file the auditor owns (never in the ledger's database, which is what is checked).

Two uses, one machinery (the engine's ``WorkingState`` over a ``StateLoader``, exactly
as ingestion runs it, so the replay's memory is one batch, not the history):

- a full ``verify`` replays into a temporary file, deleted afterwards;
- the daily check (``verify --since-checkpoint``) keeps the file beside the auditor's
  public key: it holds the state as of the last signed checkpoint the auditor verified
  (``reached``), so the next check replays only the events that came after it.

The file also holds, for one run only, the digests of the journal entries the replay
implies and the keys of the reference rows it touched: they are compared with the ledger
at the end of the run, then dropped.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.pool import NullPool

from ledger.chain.checkpoint import Checkpoint, parse
from ledger.domain.entries import JournalEntry
from ledger.store import tables
from ledger.store.errors import StoreError
from ledger.store.refdata import KINDS
from ledger.store.state_sql import CHUNK, SqlStateLoader

# the reference state, in the ledger's own table shapes (so the ledger's loader and
# writer, ledger/store/state_sql.py, read and write it unchanged)
STATE_TABLES = (*(kind.name for kind in KINDS), "account_balances")
SCHEMA_VERSION = 1

metadata = MetaData()
for _name in STATE_TABLES:
    tables.metadata.tables[_name].to_metadata(metadata)
# the ids of the events replayed (the duplicate check: ``StateLoader.processed``)
replayed = Table("replayed", metadata, Column("event_id", String, primary_key=True))
# this run only: what the replayed events imply, to compare with the ledger at the end
implied_entries = Table(
    "implied_entries",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("ordinal", Integer, primary_key=True),
    Column("digest", LargeBinary, nullable=False),
)
touched = Table(
    "touched",
    metadata,
    Column("name", String, primary_key=True),  # a STATE_TABLES name
    Column("key", String, primary_key=True),
)
# one row: the signed checkpoint the state is at, and the file's format
reached = Table(
    "reached",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("checkpoint", Text),  # file form (ledger/chain/checkpoint.py); NULL: genesis
)


class AuditStore:
    """A SQLite file of replay state. ``path`` None: a temporary one, deleted by
    ``dispose``."""

    def __init__(self, path: Path | None = None) -> None:
        self._tmp = None if path is not None else tempfile.TemporaryDirectory(prefix="verify-")
        self.path = path if path is not None else Path(self._tmp.name) / "replay.sqlite"  # type: ignore[union-attr]
        self.engine = _engine(self.path, durable=path is not None)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            row = conn.execute(select(reached.c.version)).first()
            if row is None:
                conn.execute(reached.insert().values(id=1, version=SCHEMA_VERSION))
            elif row[0] != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: replay state of version {row[0]}")

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()


def _engine(path: Path, *, durable: bool) -> Engine:
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is issued below (savepoints work)
        cursor = dbapi_connection.cursor()
        # a temporary file needs no durability; either way the cache is bounded
        cursor.execute("PRAGMA journal_mode=" + ("WAL" if durable else "MEMORY"))
        cursor.execute("PRAGMA synchronous=" + ("NORMAL" if durable else "OFF"))
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB at most
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def reached_checkpoint(conn: Connection) -> Checkpoint | None:
    """The checkpoint the stored state is at; None: the state is empty (genesis)."""
    text = conn.execute(select(reached.c.checkpoint)).scalar()
    return None if text is None else parse(text)


def set_reached(conn: Connection, checkpoint: Checkpoint | None) -> None:
    value = None if checkpoint is None else checkpoint.to_json()
    conn.execute(reached.update().values(checkpoint=value))


def forget_run(conn: Connection) -> None:
    """Drop what one run keeps for its final comparison."""
    conn.execute(delete(implied_entries))
    conn.execute(delete(touched))


def reset(conn: Connection) -> None:
    """Back to genesis: no state, no checkpoint (a full check rebuilds it)."""
    for table in reversed(metadata.sorted_tables):
        if table is not reached:
            conn.execute(delete(table))
    set_reached(conn, None)


class ReplayLoader(SqlStateLoader):
    """The ledger's loader over the replay state; an event counts as processed once
    replayed (the ledger asks its event log)."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, lock_rows=False)

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        return self._existing(replayed.c.event_id, event_ids)


def add_balances(conn: Connection, entries: Iterable[JournalEntry]) -> None:
    """Move the replay's balances by the postings of ``entries``."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for entry in entries:
        for posting in entry.postings:
            sums[(posting.account, posting.currency)] += posting.amount
    if sums:
        conn.exec_driver_sql(
            "INSERT INTO account_balances (account, currency, shard, balance) "
            "VALUES (?, ?, '', ?) ON CONFLICT (account, currency, shard) "
            "DO UPDATE SET balance = account_balances.balance + excluded.balance",
            [(account, currency, amount) for (account, currency), amount in sums.items()],
        )


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """The bulk insert ``write_changes`` takes (its rows name every column)."""
    if rows:
        conn.execute(table.insert(), list(rows))


def chunks(keys: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(keys), CHUNK):
        yield keys[start : start + CHUNK]
