"""The whole story of an order (ledger/read/order_story.py, GET /api/v1/orders/{id}, the
dashboard's order page): on random streams and simulated platforms, on SQLite and
PostgreSQL, every order's story adds up (lines to pool to fee + levels = merchant charge,
each entry balanced, the journal's postings equal to the figures, each level's share
equal to the payout view, the covering payouts equal to the paid state), and an unknown
order is a 404 in the API and on the page."""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger.api.app import create_app
from ledger.domain.entries import PLATFORM_FEES, merchant_account
from ledger.domain.money import BPS, split_lines
from ledger.read import orders
from ledger.read.models import OrderStory
from ledger.read.order_story import decimal, order_story
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.web.pages import mount
from projectors import runner
from tests.support.api import TOKENS, auth, dashboard_login, small_ledger, token_book
from tests.support.streams import streams
from tests.support.views import url_factory

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@pytest.fixture(params=["sqlite", "postgres"])
def make_url(request, tmp_path_factory):
    yield from url_factory(request, tmp_path_factory, prefix="story")


def _ledger(url: str, events: list) -> object:
    store = open_store(url)
    LedgerService(store).ingest([Received(e, f"s:{n}", "s") for n, e in enumerate(events)])
    runner.catch_up(store)
    return store


def check_every_story(store) -> dict[str, int]:
    """Check every order's story; counts of what was seen (so a test can require that
    the streams reached refunds, settlements and payouts)."""
    seen: dict[str, int] = defaultdict(int)
    with store.read() as conn:
        order_ids = conn.execute(select(t.orders.c.order_id)).scalars().all()
        refund_ids = defaultdict(set)
        for refund_id, order_id in conn.execute(select(t.refunds)):
            refund_ids[order_id].add(refund_id)
        for order_id in order_ids:
            story = order_story(conn, order_id)
            assert story is not None
            check_story(conn, story, refund_ids[order_id], seen)
    return dict(seen)


def check_story(conn, story: OrderStory, refund_ids: set[str], seen: dict[str, int]) -> None:
    m = story.money
    # lines: remaining = amount − refunded; their sum is the money's line amount
    assert all(x.remaining == x.amount - x.refunded >= 0 for x in story.lines)
    assert m.lines_amount == sum(x.remaining for x in story.lines)
    # the pool from the lines, exact; the split of the pool by the plan is what is posted
    pool = Fraction(sum(x.remaining * x.rate_bps for x in story.lines), BPS)
    assert m.commission_pool == decimal(pool)
    assert m.merchant_charge == m.platform_fee + m.commission
    assert m.merchant_keeps == decimal(pool - m.merchant_charge)
    assert m.commission == sum(s.amount for s in story.shares)
    if story.plan is not None and story.shares:
        split = split_lines(
            [(x.remaining, x.rate_bps) for x in story.lines],
            story.plan.platform_fee_bps,
            story.plan.level_shares_bps[: len(story.shares)],
        )
        assert split.fee == m.platform_fee
        assert list(split.levels) == [s.amount for s in story.shares]
        assert pool >= m.merchant_charge  # the residue stays with the merchant
        seen["priced"] += 1
    else:
        assert (m.merchant_charge, m.platform_fee, m.commission) == (0, 0, 0)
    # every entry balances; the journal's postings are the figures above
    merchant = merchant_account(story.merchant_id)
    money_entries = [e for e in story.entries if e.kind in ("accrual", "reversal")]
    for entry in story.entries:
        assert entry.order_id == story.order_id and len(entry.hash) == 64
        by_currency: dict[str, int] = defaultdict(int)
        for p in entry.postings:
            by_currency[p.currency] += p.amount
        assert set(by_currency.values()) == {0}
    legs = [p for e in money_entries for p in e.postings]
    assert -sum(p.amount for p in legs if p.account == merchant) == m.merchant_charge
    assert sum(p.amount for p in legs if p.account == PLATFORM_FEES) == m.platform_fee
    assert m.charged_at_placement - m.refunded_to_merchant == m.merchant_charge
    # each level's share: the payout view's, and the journal's postings for that level
    view = orders.order_payouts(conn, story.order_id)
    assert view is not None
    assert [(lv.level, lv.sharer_id, lv.amount, lv.state) for lv in view.levels] == [
        (s.level, s.sharer_id, s.amount, s.state) for s in story.shares
    ]
    for share in story.shares:
        assert share.amount == sum(p.amount for p in legs if p.level == share.level)
        assert share.amount == share.accrued - share.reversed
        assert share.share_bps == story.plan.level_shares_bps[share.level - 1]
        assert share.rule == "accrual/v1"
        covered = sum(p.covered for p in share.paid_by)
        assert all(0 < p.covered <= p.amount for p in share.paid_by)
        if share.state == "paid":
            assert covered == share.settled
            seen["paid"] += bool(share.paid_by)
        elif share.settled_at is None:
            assert share.paid_by == ()
        elif share.state == "available":
            assert covered < share.settled
    # the settlement: the run named by the order, its entry moving each level's settled
    if story.settlement is not None:
        seen["settled"] += 1
        settlement = [e for e in story.entries if e.kind == "settlement"]
        assert len(settlement) <= 1
        if settlement:
            assert story.settlement.entry_seq == settlement[0].seq
            moved = {p.level: p.amount for p in settlement[0].postings if p.amount > 0}
            assert moved == {s.level: s.settled for s in story.shares if s.settled}
    else:
        assert all(s.settled_at is None for s in story.shares)
    # refunds: every refund of the order, each with an event when it moved money
    assert {r.refund_id for r in story.refunds} == refund_ids
    reversals = {e.event_id for e in story.entries if e.kind == "reversal"}
    assert {r.event_id for r in story.refunds if r.event_id} == reversals
    refunded = defaultdict(int)
    for r in story.refunds:
        seen["refunds"] += 1
        for line in r.lines:
            refunded[line.line_id] += line.amount
    for line in story.lines:
        assert refunded[line.line_id] <= line.refunded
        if all(r.event_id for r in story.refunds):
            assert refunded[line.line_id] == line.refunded
    assert m.refunded_to_merchant == sum(r.merchant_charge for r in story.refunds)


@settings(max_examples=25, **SETTINGS)
@given(events=streams(max_buyers=3, min_steps=25, max_steps=45))
def test_every_story_adds_up_on_random_streams(make_url, events) -> None:
    store = _ledger(make_url(), events)
    check_every_story(store)
    store.dispose()


@settings(max_examples=4, **SETTINGS)
@given(seed=st.integers(0, 10**6))
def test_every_story_adds_up_on_simulated_platforms(make_url, seed) -> None:
    """Simulated platforms pay out and refund a lot: the stories reach every part."""
    events = generate(seed, sharers=12, buyers=15, orders=60, refund_share=0.4).all()
    store = _ledger(make_url(), events)
    seen = check_every_story(store)
    store.dispose()
    assert seen.get("priced", 0) > 10 and seen.get("settled", 0) > 0
    assert seen.get("refunds", 0) > 0


def test_paid_levels_name_their_payouts(tmp_path) -> None:
    """On the demo-sized platform some levels are paid, and each names the payouts
    that covered it (the rule of the paid state, said in the story)."""
    store = small_ledger(tmp_path / "l.sqlite", orders=150)
    seen = check_every_story(store)
    assert seen.get("paid", 0) > 0
    store.dispose()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = small_ledger(tmp_path_factory.mktemp("story") / "l.sqlite", orders=150)
    with TestClient(mount(create_app(store, token_book()))) as http:
        yield http, store
    store.dispose()


def test_the_api_answers_the_story_and_404_for_an_unknown_order(client) -> None:
    http, store = client
    with store.read() as conn:
        order_id = orders.first_order_paying_levels(conn, 3)
        expected = order_story(conn, order_id)
    assert expected is not None
    for role in ("finance", "auditor"):
        got = http.get(f"/api/v1/orders/{order_id}", headers=auth(role))
        assert got.status_code == 200
        assert got.json() == json.loads(json.dumps(expected.as_dict()))
    assert http.get(f"/api/v1/orders/{order_id}", headers=auth("publisher")).status_code == 403
    missing = http.get("/api/v1/orders/no-such-order", headers=auth("finance"))
    assert missing.status_code == 404 and "no-such-order" in missing.json()["detail"]
    assert http.get("/api/v1/orders/a%00b", headers=auth("finance")).status_code == 422


def test_the_order_page_shows_the_story_and_404_for_an_unknown_order(client) -> None:
    http, store = client
    with store.read() as conn:
        order_id = orders.first_order_paying_levels(conn, 3)
        story = order_story(conn, order_id)
    assert story is not None
    dashboard_login(http, TOKENS["finance"])
    page = http.get(f"/dashboard/orders/{order_id}")
    assert page.status_code == 200
    for figure in ("merchant_charge", "platform_fee", "commission", "commission_pool"):
        value = getattr(story.money, figure)
        assert f'data-field="{figure}" data-minor="{value}">' in page.text
    for entry in story.entries:
        assert entry.hash in page.text
    missing = http.get("/dashboard/orders/no-such-order")
    assert missing.status_code == 404 and "No order" in missing.text
