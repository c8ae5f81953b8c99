"""Property: on random event streams, the database-backed service gives exactly what the
in-memory reference model gives (entries, balances, dead letters, parked events), whatever
the batch boundaries, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger.domain.engine import Rejected
from ledger.domain.memory import InMemoryLedger
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.verify import verify
from tests.support import reads as queries
from tests.support.streams import streams
from tests.support.views import url_factory


@pytest.fixture(params=["sqlite", "postgres"])
def db_url_factory(request, tmp_path_factory):
    """Makes a fresh database per hypothesis example (function fixtures are shared by all
    examples of one test)."""
    yield from url_factory(request, tmp_path_factory, prefix="prop")


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _entries(store) -> list[tuple]:
    e, p = t.entries, t.postings
    with store.read() as conn:
        rows = conn.execute(
            select(
                e.c.event_id,
                e.c.ordinal,
                e.c.kind,
                e.c.rule,
                e.c.order_id,
                p.c.account,
                p.c.currency,
                p.c.amount,
            )
            .join(p, p.c.entry_seq == e.c.seq)
            .order_by(e.c.chain_seq, p.c.ordinal)
        )
        return [tuple(r) for r in rows]


def _model_entries(model: InMemoryLedger) -> list[tuple]:
    return [
        (x.event_id, x.ordinal, x.kind, x.rule, x.order_id, p.account, p.currency, p.amount)
        for x in model.entries
        for p in x.postings
    ]


def ingest_both(url: str, events, cuts) -> tuple:
    """The events into a fresh database, in batches cut by ``cuts`` (cycled: many
    boundaries, so state must survive them), and into the in-memory model."""
    store = open_store(url)
    service = LedgerService(store)
    position, sizes = 0, itertools.cycle(cuts)
    while position < len(events):
        size = next(sizes)
        chunk = events[position : position + size]
        service.ingest([Received(e, f"p:{position + i}", "c") for i, e in enumerate(chunk)])
        position += size
    model = InMemoryLedger()
    model.ingest(events)
    return store, model


@SETTINGS
@given(
    events=streams(max_buyers=3, max_steps=35),
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=8),
)
def test_database_equals_the_model(db_url_factory, events, cuts) -> None:
    store, model = ingest_both(db_url_factory(), events, cuts)
    assert _entries(store) == _model_entries(model)
    assert queries.account_balances(store) == model.balances()
    expected_dead = sorted(
        (r.incoming.event.event_id, r.outcome.reason)
        for r in model.results
        if isinstance(r.outcome, Rejected)
    )
    assert (
        sorted((d["event_id"], d["reason"]) for d in queries.dead_letters(store)) == expected_dead
    )
    assert sorted(p["event_id"] for p in queries.parked_events(store)) == sorted(model.parked())
    assert verify(store).ok
    store.dispose()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10**6), cuts=st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_simulated_platform_equals_the_model(db_url_factory, seed, cuts) -> None:
    events = generate(seed, sharers=12, buyers=15, orders=40, refund_share=0.4).all()
    store, model = ingest_both(db_url_factory(), events, cuts)
    assert _entries(store) == _model_entries(model)
    assert queries.account_balances(store) == model.balances()
    store.dispose()


@pytest.mark.parametrize("seed", [3, 2026])
def test_settlement_written_in_slices_equals_the_model(db_url_factory, seed, monkeypatch) -> None:
    """A batch with more entries or changed orders than one slice (a settlement run over
    many orders) is copied a slice at a time: with slices of 2 entries and 3 orders the
    ledger, the balances and the orders still equal the model, and verify passes."""
    from ledger.store import state_sql
    from ledger.store import store as store_module

    monkeypatch.setattr(store_module, "ROWS_PER_COPY", 2)
    monkeypatch.setattr(state_sql, "CHUNK", 3)
    events = generate(seed, sharers=12, buyers=15, orders=40, refund_share=0.2).all()
    store, model = ingest_both(db_url_factory(), events, [500])  # the run in one batch
    assert _entries(store) == _model_entries(model)
    assert queries.account_balances(store) == model.balances()
    with store.read() as conn:
        settled = conn.execute(
            select(t.orders.c.order_id).where(t.orders.c.settled_by.is_not(None))
        ).all()
        assert len(settled) > 3  # the run settled more orders than one slice
    assert verify(store).ok
    store.dispose()
