"""Attribution reads one committed click per order (``StateLoader.latest_clicks``, an index
probe) instead of all of its buyer's clicks in the window. Property: on random streams cut
into random batches it attributes every order exactly as the window scan does (SPEC §3:
``attribute`` over all the buyer's clicks received before the order), on SQLite and
PostgreSQL; and the loader's probe finds what a scan of the stored clicks finds.

The streams are built for the corners: few distinct times (same-time ties), clicks out of
time order, clicks in the same batch as the order and after its time, several orders of
one buyer in one batch, named clicks (the buyer's, another's, unknown), and plans with
different windows published before and between the orders."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger.domain.attribution import attribute
from ledger.domain.events import ClickRecorded, Event, OrderPlaced, PlanPublished
from ledger.domain.memory import InMemoryLedger
from ledger.domain.model import Click
from ledger.service import LedgerService, Received
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.state_sql import SqlStateLoader
from tests.support.streams import DAY, T0, Ev
from tests.support.views import url_factory

BUYERS = ("B1", "B2", "B3")
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url_factory(request, tmp_path_factory):
    yield from url_factory(request, tmp_path_factory, prefix="attr")


def _times() -> st.SearchStrategy[int]:
    """Few distinct times over 40 days, so that ties and window edges are common."""
    return st.integers(0, 16).map(lambda k: T0 + k * (DAY * 5 // 2))


@st.composite
def attribution_streams(draw) -> list[Event]:
    ev = Ev()
    clicks = draw(st.integers(1, 30))
    sharers = [f"S{n}" for n in range(clicks)]  # one sharer per click: levels name the click
    events: list[Event] = [ev.enroll(s) for s in sharers]
    windows = draw(st.lists(st.sampled_from([1, 5, 12, 30]), min_size=1, max_size=3))
    plans = [ev.plan(f"P{n}", T0 + n * 10 * DAY, window=w, at=T0) for n, w in enumerate(windows)]
    later: list[Event] = plans[1:]  # plans after the first may come between the orders
    for n, sharer in enumerate(sharers):
        buyer = draw(st.sampled_from(BUYERS))
        later.append(ev.click(f"C{n}", sharer, buyer, draw(_times())))
    for n in range(draw(st.integers(1, 25))):
        named = draw(st.one_of(st.none(), st.sampled_from([f"C{k}" for k in range(clicks + 2)])))
        order_buyer = draw(st.sampled_from(BUYERS))
        later.append(ev.order(f"O{n}", order_buyer, draw(_times()), click=named))
    return [*events, plans[0], *draw(st.permutations(later))]


def window_scan(events: list[Event]) -> dict[str, tuple[list[str], str | None]]:
    """Each order's (levels, why none) by the rule over every click received before it."""
    windows: dict[int, int] = {}  # effective from -> window (ms) of the plans so far
    received: dict[str, Click] = {}
    expected: dict[str, tuple[list[str], str | None]] = {}
    for arrival, e in enumerate(events):
        if isinstance(e, PlanPublished):
            windows[e.effective_from] = e.attribution_window_days * DAY
        elif isinstance(e, ClickRecorded):
            received[e.click_id] = Click(
                e.click_id, e.buyer_id, e.sharer_id, e.occurred_at, arrival
            )
        elif isinstance(e, OrderPlaced):
            in_force = [start for start in windows if start <= e.occurred_at]
            if not in_force:
                expected[e.order_id] = ([], "no_plan_in_force")
                continue
            window = windows[max(in_force)]
            mine = sorted(
                (c for c in received.values() if c.buyer_id == e.buyer_id),
                key=lambda c: (c.occurred_at, c.arrival),
            )
            named = received.get(e.click_id) if e.click_id else None
            click = attribute(named, mine, e.buyer_id, e.occurred_at, window)
            expected[e.order_id] = (
                ([click.sharer_id], None) if click else ([], "no_qualifying_click")
            )
    return expected


@SETTINGS
@given(events=attribution_streams(), cuts=st.lists(st.integers(1, 12), min_size=1, max_size=5))
def test_the_bounded_look_up_attributes_like_the_window_scan(db_url_factory, events, cuts):
    store = open_store(db_url_factory())
    service = LedgerService(store)
    position, sizes = 0, itertools.cycle(cuts)
    while position < len(events):
        chunk = events[position : position + next(sizes)]
        report = service.ingest(
            [Received(e, f"p:{position + i}", "c") for i, e in enumerate(chunk)]
        )
        assert report.rejected == 0, report.reasons
        position += len(chunk)
    with store.read() as conn:
        rows = conn.execute(
            select(t.orders.c.order_id, t.orders.c.levels, t.orders.c.no_commission_reason)
        )
        stored = {order_id: (json.loads(levels), why) for order_id, levels, why in rows}
    assert stored == window_scan(events)
    store.dispose()


@settings(max_examples=200, deadline=None)
@given(events=attribution_streams())
def test_in_memory_the_latest_of_the_added_clicks_attributes_like_the_window_scan(events):
    """The reference model (and verify's replay) keeps every click in the state: the
    latest is found by bisection, not by a walk over the buyer's clicks."""
    ledger = InMemoryLedger()
    ledger.ingest(events)
    assert ledger.rejected == []
    expected = window_scan(events)
    got = {}
    for order_id in expected:
        order = ledger.state.order(order_id)
        assert order is not None
        got[order_id] = (list(order.levels), order.no_commission_reason)
    assert got == expected


@settings(SETTINGS, max_examples=15)
@given(
    events=attribution_streams(),
    probes=st.lists(
        st.tuples(st.sampled_from(BUYERS), _times(), st.integers(0, 20 * DAY)), max_size=20
    ),
)
def test_the_loaders_probe_finds_what_a_scan_of_the_stored_clicks_finds(
    db_url_factory, events, probes
):
    store = open_store(db_url_factory())
    LedgerService(store).ingest([Received(e, f"p:{i}", "c") for i, e in enumerate(events)])
    wanted = [(buyer, at, at - back) for buyer, at, back in probes]
    with store.read() as conn:
        stored = [Click(*r) for r in conn.execute(select(t.clicks))]
        found = SqlStateLoader(conn, lock_rows=False).latest_clicks(wanted)
    expected = {}
    for buyer, at, since in wanted:
        fitting = [c for c in stored if c.buyer_id == buyer and since <= c.occurred_at <= at]
        if fitting:
            expected[(buyer, at, since)] = max(fitting, key=lambda c: (c.occurred_at, -c.arrival))
    assert found == expected
    store.dispose()
