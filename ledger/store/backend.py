"""What a database backend provides to the store: the one place PostgreSQL and SQLite
differ. ``postgres.PostgresBackend`` and ``sqlite.SqliteBackend`` implement it; the rest
of ledger/store works through this Protocol and never asks which backend it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

# The dialect INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` (both
# dialects spell those alike)
UpsertInsert = postgresql.Insert | sqlite.Insert

BalanceRow = tuple[str, str, str, int]  # (account, currency, shard, amount)


class Backend(Protocol):
    name: str  # "postgresql" | "sqlite", as in the URL
    # Reads a batch decides on (orders, payouts) take row locks: several writers share
    # the database. False where one writer at a time holds the whole database.
    locks_rows: bool
    # execution options of a read-only snapshot transaction
    read_options: Mapping[str, Any]

    def make_engine(self, url: URL, *, read_only: bool = False, max_overflow: int = 10) -> Engine:
        """The engine for ``url`` (a pool of 5 connections plus up to ``max_overflow``
        more); ValueError for a URL this backend cannot serve."""
        ...

    def insert(self, table: Table) -> UpsertInsert:
        """The dialect's INSERT construct for ``table``."""
        ...

    def allocate(self, conn: Connection, name: str, n: int) -> list[int]:
        """``n`` (> 0) fresh ids of counter ``name``, increasing."""
        ...

    def bulk_insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (a key missing from a row is NULL) in the connection's transaction."""
        ...

    def balance_shard(self, chain: str) -> str:
        """The ``account_balances`` shard the writers of ``chain`` add to."""
        ...

    def add_to_balances(self, conn: Connection, rows: Sequence[BalanceRow]) -> None:
        """Add each row's amount to its balance row (created at 0 when missing)."""
        ...

    def lock_for_migration(self, conn: Connection) -> None:
        """Serialise migrators of one database until the transaction ends."""
        ...
