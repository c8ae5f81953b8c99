"""A Store whose every transaction is a savepoint inside one outer transaction, so that a
whole run of batches (a replay) commits together or not at all.

The service opens a transaction per batch with ``store.begin()`` and rolls it back on an
error (``ingest_isolating`` retries halves of a refused batch): here each of those is a
SAVEPOINT on the one connection, so a refused batch rolls back to its savepoint and the
outer transaction goes on. ``read()`` sees what the run wrote so far (verify reads it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from ledger.store.store import Store


class _Enclosed(Store):
    def __init__(self, store: Store, conn: Connection) -> None:
        super().__init__(store.engine, store.specifics, store.url)
        self._conn = conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._conn.begin_nested():
            yield self._conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._conn.begin_nested():
            yield self._conn


@contextmanager
def one_transaction(store: Store) -> Iterator[Store]:
    """A Store for the block's work: committed when the block ends, rolled back whole if
    it raises."""
    with store.begin() as conn:
        yield _Enclosed(store, conn)
