"""Projectors: live views equal rebuilt views equal a recomputation from the journal and
the in-memory model, on random streams, on SQLite and PostgreSQL; per-chain checkpoints;
``check`` finds a corrupted row; as-of balances with backdated events."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from ledger.domain.memory import InMemoryLedger
from ledger.read import balances as read
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import view_tables as v
from ledger.store.opening import open_store
from projectors import runner
from projectors.check import check
from projectors.recompute import OrderInfo, recompute, split_sharer_account
from tests.support.streams import DAY, T0, Ev, streams
from tests.support.views import snapshot, url_factory


@pytest.fixture(params=["sqlite", "postgres"])
def make_url(request, tmp_path_factory):
    yield from url_factory(request, tmp_path_factory)


def _ingest_live(store, events, cuts, project_at) -> None:
    """Ingest in batches (cut by ``cuts``), alternating two chains, catching the views up
    after the batches flagged in ``project_at``."""
    service = LedgerService(store)
    position, sizes, flags = 0, itertools.cycle(cuts), itertools.cycle(project_at)
    for batch_no in itertools.count():
        if position >= len(events):
            break
        size = next(sizes)
        chunk = events[position : position + size]
        chain = f"chain-{batch_no % 2}"
        service.ingest([Received(e, f"p:{position + i}", chain) for i, e in enumerate(chunk)])
        position += size
        if next(flags):
            runner.catch_up(store, chunk=next(sizes))  # odd chunk sizes: ranges cut anywhere


def _model_views(events):
    model = InMemoryLedger()
    model.ingest(events)
    orders = {}
    for result in model.results:
        order_id = getattr(result.incoming.event, "order_id", None)
        order = model.state.order(order_id) if order_id else None
        if order is not None and order.levels:
            orders[order_id] = OrderInfo(
                order.levels, order.currency, order.merchant_id, order.plan_id
            )
    views = recompute(((model.chain, n, e) for n, e in enumerate(model.entries, 1)), orders)
    return model, views


SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=20, **SETTINGS)
@given(
    events=streams(max_buyers=3, min_steps=30, max_steps=40),
    cuts=st.lists(st.integers(1, 7), min_size=1, max_size=6),
    project_at=st.lists(st.booleans(), min_size=1, max_size=5),
)
def test_rebuild_equals_live_equals_the_model(make_url, events, cuts, project_at) -> None:
    _check_views(make_url(), events, cuts, project_at)


@settings(max_examples=6, **SETTINGS)
@given(
    seed=st.integers(0, 10**6),
    cuts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    project_at=st.lists(st.booleans(), min_size=1, max_size=5),
)
def test_rebuild_equals_live_on_a_simulated_platform(make_url, seed, cuts, project_at) -> None:
    events = generate(seed, sharers=12, buyers=15, orders=40, refund_share=0.4).all()
    _check_views(make_url(), events, cuts, project_at)


def _check_views(url, events, cuts, project_at) -> None:
    store = open_store(url)
    _ingest_live(store, events, cuts, project_at)
    runner.catch_up(store)
    live = snapshot(store)
    assert runner.catch_up(store).total == 0  # idempotent: nothing new, nothing done
    runner.rebuild(store)  # every chain in one statement per view
    assert snapshot(store) == live
    runner.rebuild(store, chunk=cuts[0])  # ranges of several chains cut anywhere
    assert snapshot(store) == live
    assert check(store) == []

    model, expected = _model_views(events)
    sharer_sums = {}
    for (account, currency), amount in model.balances().items():
        parsed = split_sharer_account(account)
        if parsed:
            sharer_sums.setdefault((parsed[0], currency), {})[parsed[1]] = amount
    with store.read() as conn:
        rows = [r.as_dict() for r in read.balances(conn, limit=10_000).items]
    assert {
        (r["sharer_id"], r["currency"]): {
            b: r[b] for b in ("pending", "available", "inflight", "paid") if r[b]
        }
        for r in rows
        if any(r[b] for b in ("pending", "available", "inflight", "paid"))
    } == sharer_sums
    assert {k: tuple(x) for k, x in expected.balances.items()} == {
        (r["sharer_id"], r["currency"]): tuple(r[f] for f in read.FIGURES) for r in rows
    }
    # the order levels agree with the model except for where the settlement was chained
    stored_levels = {(r[0], r[1]): list(r[2:10]) for r in live["view_order_levels"]}
    assert stored_levels == {k: x[:8] for k, x in expected.order_levels.items()}
    assert {(r[0], r[1]): list(r[2:]) for r in live["view_fee_totals"]} == expected.fee_totals
    store.dispose()


def _corrupt(store, statement) -> None:
    with store.begin() as conn:
        conn.execute(statement)


def test_check_reports_a_corrupted_view_row(db_url) -> None:
    store = open_store(db_url)
    ev = Ev()
    events = [
        ev.plan(),
        ev.enroll("S2"),
        ev.enroll("S1", "S2"),
        ev.click("C1", "S1", "B1", T0 + 10),
        ev.order("O1", "B1", T0 + 20, click="C1"),
    ]
    LedgerService(store).ingest([Received(e, f"t:{i}", "t") for i, e in enumerate(events)])
    runner.catch_up(store)
    assert check(store) == []
    b = v.view_balances
    _corrupt(store, update(b).where(b.c.sharer_id == "S1").values(pending=b.c.pending + 7))
    _corrupt(store, text("DELETE FROM view_order_levels WHERE sharer_id = 'S2'"))
    drifts = check(store)
    assert [
        (d.view, d.key, d.column, d.stored - d.expected) for d in drifts if d.view == "balances"
    ] == [("balances", ("S1", "CNY"), "pending", 7)]
    assert [(d.view, d.key, d.column) for d in drifts if d.view == "payouts"] == [
        ("payouts", ("O1", "S2"), "(missing row)")
    ]
    runner.rebuild(store, "balances")
    runner.rebuild(store, "payouts")
    assert check(store) == []
    store.dispose()


def test_checkpoints_are_per_chain_and_move_with_the_rows(db_url) -> None:
    store = open_store(db_url)
    ev = Ev()
    service = LedgerService(store)
    service.ingest(
        [
            Received(e, "a", "chain-a")
            for e in (
                ev.plan(),
                ev.enroll("S1"),
                ev.click("C1", "S1", "B1", T0 + 1),
                ev.order("O1", "B1", T0 + 2, click="C1"),
            )
        ]
    )
    service.ingest(
        [
            Received(e, "b", "chain-b")
            for e in (
                ev.click("C2", "S1", "B2", T0 + 3),
                ev.order("O2", "B2", T0 + 4),
                ev.order("O3", "B2", T0 + 5),
            )
        ]
    )
    assert runner.catch_up(store, "balances").entries == {"balances": 3}
    with store.read() as conn:
        assert runner.checkpoints(conn, "balances") == {"chain-a": 1, "chain-b": 2}
        assert runner.checkpoints(conn, "totals") == {}
        assert (
            conn.execute(select(v.view_balances.c.pending)).scalar() == 3 * 460
        )  # pool 1000, fee 8%, level 1 50%
    service.ingest([Received(ev.order("O4", "B2", T0 + 6), "b", "chain-b")])
    assert runner.catch_up(store).entries == {"balances": 1, "payouts": 4, "totals": 4}
    with store.read() as conn:
        assert runner.checkpoints(conn, "balances") == {"chain-a": 1, "chain-b": 3}
    store.dispose()


def test_as_of_balances_see_backdated_events(db_url) -> None:
    """A late event dated before T changes the balance as of T (event time), and the
    view's as-of answer always equals the sum of the journal's postings up to T."""
    store = open_store(db_url)
    ev = Ev()
    service = LedgerService(store)
    T = T0 + 10 * DAY
    setup = [
        ev.plan(window=30),
        ev.enroll("S1"),
        ev.click("C1", "S1", "B1", T0 + DAY),
        ev.order("O1", "B1", T0 + 2 * DAY),
        ev.order("O2", "B1", T + DAY),
    ]  # after T
    service.ingest([Received(e, "s", "c") for e in setup])
    runner.catch_up(store)

    def as_of(t):
        with store.read() as conn:
            return {
                r.currency: r.as_dict() for r in read.balances(conn, sharer_id="S1", as_of=t).items
            }

    before = as_of(T)["CNY"]
    assert (before["pending"], before["earned"]) == (460, 460)
    assert as_of(T + 2 * DAY)["CNY"]["pending"] == 920
    assert as_of(T0) == {}
    # a backdated order (placed before T, arriving now) and a refund of O1 dated before T
    late = [
        ev.order("O0", "B1", T0 + 3 * DAY, lines=(("L1", 20_000, None),)),
        ev.refund("R1", "O1", "B1", [("L1", 5_000)], T - 1),
    ]
    service.ingest([Received(e, "late", "c") for e in late])
    assert as_of(T)["CNY"]["pending"] == 460  # the view has not caught up yet: unchanged
    runner.catch_up(store)
    after = as_of(T)["CNY"]
    assert (after["pending"], after["earned"], after["reversed"]) == (460 + 920 - 230, 1380, 230)
    from tests.support import reads as queries

    for t in (T0, T0 + 3 * DAY, T - 1, T, T + DAY, T + 5 * DAY):
        journal = {
            b.currency: b.pending for b in queries.sharer_balances(store, sharer_id="S1", as_of=t)
        }
        assert {c: r["pending"] for c, r in as_of(t).items()} == {
            c: p for c, p in journal.items() if p
        }, t
    store.dispose()
