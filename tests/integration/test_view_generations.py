"""A rebuild writes a new generation of a view beside the one readers see and switches to
it on commit (ledger/store/view_tables.py), on SQLite and PostgreSQL, as the service role:
a reader during the rebuild sees the whole old view, never a mix and never a wait; after
it the whole new one, which equals the live view and the recomputation; a drifted view
is repaired; the old generation's rows are gone; migration 0008 keeps a 0005 ledger's
views."""

from __future__ import annotations

from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from ledger.read import balances, sharers, totals
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import view_tables as v
from ledger.store.opening import alembic_config, open_store, run_migrations
from ledger.store.roles import privileged_role
from projectors import runner
from projectors.check import check
from tests.integration.test_views import SETTINGS, make_url  # noqa: F401 - the fixture
from tests.support.roles import as_owner
from tests.support.views import VIEW_TABLES, snapshot


def _events(seed: int, orders: int) -> list:
    return generate(seed, sharers=10, buyers=12, orders=orders, refund_share=0.3).all()


def _ingest(store, events, first: int = 0) -> None:
    """In batches of 25 over three chains, the views caught up after each."""
    service = LedgerService(store)
    for start in range(0, len(events), 25):
        chain = f"chain-{(start // 25) % 3}"
        batch = events[start : start + 25]
        at = first + start
        service.ingest([Received(e, f"g:{at + i}", chain) for i, e in enumerate(batch)])
        runner.catch_up(store)


def _ledger(url: str, seed: int, orders: int = 30):
    store = open_store(url)
    _ingest(store, _events(seed, orders))
    return store


def _no_waiting(url: str) -> str:
    """``url`` whose sessions give up on any lock after 2 s (PostgreSQL): a reader that
    had to wait for the rebuild fails instead of hanging the test."""
    return url + "?options=-c%20lock_timeout%3D2000" if url.startswith("postgresql") else url


def _reads(store, earners: list[str]) -> dict[str, object]:
    """What the API answers from each view table (one snapshot)."""
    with store.read() as conn:
        return {
            "view_balances": balances.balances(conn, limit=10_000).items,
            "view_order_levels": {s: sharers.earnings(conn, s) for s in earners},
            "view_fee_totals": totals.totals(conn),
        }


def _rows_per_generation(store) -> dict[str, dict[int, int]]:
    with store.read() as conn:
        return {
            table.name: dict(
                conn.execute(
                    select(table.c.generation, func.count()).group_by(table.c.generation)
                ).all()
            )
            for table in VIEW_TABLES
        }


def _drift(store) -> None:
    """Corrupt every view: a cell changed, a row gone, a row too many."""
    b, ol, f = v.view_balances, v.view_order_levels, v.view_fee_totals
    with store.begin() as conn:
        conn.execute(update(b).values(pending=b.c.pending + 7))
        first = conn.execute(select(ol.c.order_id).order_by(ol.c.order_id).limit(1)).scalar()
        conn.execute(ol.delete().where(ol.c.order_id == first))
        conn.execute(
            f.insert().values(generation=0, day=1, currency="XTS", fees=1, merchant_charges=2)
        )


@settings(max_examples=3, **SETTINGS)
@given(seed=st.integers(0, 10**6), chunk=st.integers(1, 60))
def test_readers_see_a_whole_view_during_a_rebuild(make_url, seed, chunk) -> None:  # noqa: F811
    url = make_url()
    store = _ledger(url, seed)
    readers = open_store(_no_waiting(url))
    live = snapshot(store)
    _drift(store)
    sharers = sorted({row[0] for row in live["view_balances"]})
    drifted, drifted_reads = snapshot(store), _reads(store, sharers)
    assert drifted != live and len(check(store)) >= 3
    seen = []

    def reader(done: int, total: int) -> None:
        # the rebuild's transaction is open and holds part of a view's new generation
        seen.append((snapshot(readers), _reads(readers, sharers)))

    runner.rebuild(store, chunk=chunk, progress=reader)
    assert snapshot(store) == live  # rebuilt == live
    rebuilt_reads = _reads(store, sharers)
    assert len(seen) >= 3  # at least one pause per view
    for rows, answers in seen:  # each view (one transaction each) whole: old or new
        for table in live:
            assert rows[table] in (drifted[table], live[table])
            assert answers[table] in (drifted_reads[table], rebuilt_reads[table])
    assert seen[0] == (drifted, drifted_reads)  # the first view, mid-rebuild: all old
    assert check(store) == []  # == the independent recomputation
    assert _rows_per_generation(store) == {  # the shown generation only, the old one gone
        table: {1: len(rows)} for table, rows in live.items()
    }
    readers.dispose()
    store.dispose()


def test_rebuild_runs_as_the_service_role_and_keeps_catching_up(make_url) -> None:  # noqa: F811
    events = _events(5, orders=30)
    half = len(events) // 2
    store = open_store(make_url())
    _ingest(store, events[:half])
    if store.backend == "postgresql":
        with store.read() as conn:
            assert privileged_role(conn) is None  # the role the docs prescribe
    runner.rebuild(store)
    runner.rebuild(store, "payouts")
    assert {t: set(g) for t, g in _rows_per_generation(store).items()} == {
        "view_balances": {1},
        "view_order_levels": {2},
        "view_fee_totals": {1},
    }
    # the follower folds new entries into the shown generation
    LedgerService(store).ingest(
        [Received(e, f"g:{half + i}", "chain-9") for i, e in enumerate(events[half:])]
    )
    assert runner.catch_up(store).total > 0
    assert check(store) == []
    assert set(_rows_per_generation(store)["view_order_levels"]) == {2}
    caught_up = snapshot(store)
    runner.rebuild(store)
    assert snapshot(store) == caught_up
    store.dispose()


def test_migration_0008_keeps_the_views_of_a_0005_ledger(db_url) -> None:
    owner = open_store(as_owner(db_url))
    store = _ledger(db_url, seed=9, orders=15)
    live = snapshot(store)
    store.dispose()
    config = alembic_config()
    with owner.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    with owner.read() as conn:
        assert conn.execute(select(func.count()).select_from(text("view_order_levels"))).scalar()
    run_migrations(owner)
    owner.dispose()
    store = open_store(db_url)
    assert snapshot(store) == live
    assert check(store) == []
    assert _rows_per_generation(store)["view_order_levels"].keys() == {0}
    store.dispose()
