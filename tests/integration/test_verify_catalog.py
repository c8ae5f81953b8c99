"""On PostgreSQL, verify trusts the catalog for value types: a table whose
columns all have their declared types cannot hold a value of another type, so the per-row
type checks are skipped there. A column whose type was altered puts the checks back, and
the altered value is still reported at its row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from ledger.store import tables
from ledger.store.opening import open_store
from ledger.store.shape import typed_by_catalog
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.support.tamper import build_ledger, triggers_lifted

CHECKED = [tables.entries, tables.postings, tables.events]


@pytest.fixture
def store(fresh_pg_url: str) -> Iterator[Store]:
    opened = open_store(fresh_pg_url)
    build_ledger(opened, orders=6)
    yield opened
    opened.dispose()


def test_a_ledger_as_migrated_is_typed_by_its_catalog(store: Store) -> None:
    with store.read() as conn:
        assert typed_by_catalog(conn, CHECKED) == {"entries", "postings", "events"}
        every = list(tables.metadata.tables.values())
        # account_balances.balance is numeric on PostgreSQL (a variant of its declared
        # BigInteger): not what the row checks expect, so it is never trusted
        assert typed_by_catalog(conn, every) == {t.name for t in every} - {"account_balances"}


def test_sqlite_is_never_trusted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    opened = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
    try:
        with opened.read() as conn:
            assert typed_by_catalog(conn, CHECKED) == set()
    finally:
        opened.dispose()


def test_an_altered_column_type_brings_the_row_checks_back(store: Store) -> None:
    with store.read() as conn:
        seq = conn.execute(
            select(tables.postings.c.entry_seq)
            .where(tables.postings.c.ordinal == 1)
            .order_by(tables.postings.c.entry_seq)
            .limit(1)
        ).scalar_one()
    with triggers_lifted(store) as conn:
        conn.execute(text("ALTER TABLE postings ALTER COLUMN amount TYPE double precision"))
        conn.execute(
            text("UPDATE postings SET amount = amount + 0.5 WHERE entry_seq = :s AND ordinal = 1"),
            {"s": seq},
        )
    with store.read() as conn:
        assert typed_by_catalog(conn, CHECKED) == {"entries", "events"}
    report = verify(store, replay=False)
    assert not report.ok
    assert report.first_bad_seq == seq
    assert "postings.amount is not an integer" in (report.problem or "")


def test_a_dropped_not_null_brings_the_row_checks_back(store: Store) -> None:
    with triggers_lifted(store) as conn:
        conn.execute(text("ALTER TABLE entries ALTER COLUMN kind DROP NOT NULL"))
    with store.read() as conn:
        assert typed_by_catalog(conn, CHECKED) == {"postings", "events"}
    assert verify(store).ok  # nothing is NULL yet: the checks run and find nothing
