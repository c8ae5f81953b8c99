"""Hypothesis strategies for valid events of every type, shared by the whole test suite.

``events()`` draws any event; one strategy per type (``order_placed()``, ...) draws that
type. Every per-type strategy takes keyword overrides, each a strategy for one field, e.g.
``order_placed(buyer_id=st.just("b-1"))``. Values are what the schemas and the engine
accept as well-formed: short ASCII ids, times between 2020 and 2030 in ms, a few ISO 4217
currencies, non-negative integer amounts, level shares of 3 values summing to ≤ 10000.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

from ledger.domain.events import (
    ClickRecorded,
    Event,
    MinPayout,
    OrderCompleted,
    OrderLine,
    OrderPlaced,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    PlanPublished,
    RefundIssued,
    RefundLine,
    SettlementRun,
    SharerEnrolled,
)

SS = st.SearchStrategy
MIN_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
MAX_MS = 1_893_456_000_000  # 2030-01-01T00:00:00Z
CURRENCIES = ("CNY", "USD", "EUR", "JPY")
PRODUCERS = ("shop", "click-tracker", "user-service", "refund-service", "finance")


def ids(prefix: str = "") -> SS[str]:
    """Short ASCII ids, optionally with a prefix (``ids("o-")`` -> ``"o-x7"``)."""
    return st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=10).map(
        lambda s: prefix + s
    )


def times() -> SS[int]:
    """Event times in ms since the epoch, 2020..2030."""
    return st.integers(min_value=MIN_MS, max_value=MAX_MS)


def currencies() -> SS[str]:
    return st.sampled_from(CURRENCIES)


def amounts(max_value: int = 10**12) -> SS[int]:
    """Money in integer minor units, ≥ 0."""
    return st.integers(min_value=0, max_value=max_value)


def bps(max_value: int = 10_000) -> SS[int]:
    return st.integers(min_value=0, max_value=max_value)


@st.composite
def level_shares(draw: Any) -> tuple[int, int, int]:
    """Three level shares in bps whose sum is at most 10000."""
    first = draw(bps())
    second = draw(bps(10_000 - first))
    third = draw(bps(10_000 - first - second))
    return (first, second, third)


def _common() -> dict[str, SS[Any]]:
    return {
        "event_id": ids("ev-"),
        "occurred_at": times(),
        "producer": st.sampled_from(PRODUCERS),
    }


def _build(cls: type[Event], fields: dict[str, SS[Any]], overrides: dict[str, SS[Any]]) -> SS:
    unknown = set(overrides) - set(cls.__dataclass_fields__)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return st.builds(cls, **{**_common(), **fields, **overrides})


def sharer_enrolled(**overrides: SS[Any]) -> SS[SharerEnrolled]:
    return _build(
        SharerEnrolled,
        {"sharer_id": ids("u-"), "upline_id": st.none() | ids("u-")},
        overrides,
    )


def min_payouts() -> SS[tuple[MinPayout, ...]]:
    return st.lists(
        st.builds(MinPayout, currency=currencies(), amount=amounts(10**6)),
        max_size=3,
        unique_by=lambda m: m.currency,
    ).map(tuple)


def plan_published(**overrides: SS[Any]) -> SS[PlanPublished]:
    return _build(
        PlanPublished,
        {
            "plan_id": ids("plan-"),
            "effective_from": times(),
            "default_rate_bps": bps(),
            "platform_fee_bps": bps(),
            "level_shares_bps": level_shares(),
            "frozen_days": st.integers(0, 60),
            "attribution_window_days": st.integers(0, 60),
            "self_purchase_allowed": st.booleans(),
            "min_payouts": min_payouts(),
        },
        overrides,
    )


def click_recorded(**overrides: SS[Any]) -> SS[ClickRecorded]:
    return _build(
        ClickRecorded,
        {
            "click_id": ids("c-"),
            "sharer_id": ids("u-"),
            "buyer_id": ids("u-"),
            "product_id": ids("p-"),
        },
        overrides,
    )


def order_lines() -> SS[tuple[OrderLine, ...]]:
    line = st.builds(
        OrderLine,
        line_id=ids("l-"),
        product_id=ids("p-"),
        quantity=st.integers(1, 100),
        amount=amounts(10**9),
        merchant_rate_bps=st.none() | bps(),
    )
    return st.lists(line, min_size=1, max_size=4, unique_by=lambda x: x.line_id).map(tuple)


def order_placed(**overrides: SS[Any]) -> SS[OrderPlaced]:
    return _build(
        OrderPlaced,
        {
            "order_id": ids("o-"),
            "buyer_id": ids("u-"),
            "merchant_id": ids("m-"),
            "currency": currencies(),
            "lines": order_lines(),
            "click_id": st.none() | ids("c-"),
        },
        overrides,
    )


def order_completed(**overrides: SS[Any]) -> SS[OrderCompleted]:
    return _build(OrderCompleted, {"order_id": ids("o-"), "buyer_id": ids("u-")}, overrides)


def refund_lines() -> SS[tuple[RefundLine, ...]]:
    line = st.builds(RefundLine, line_id=ids("l-"), amount=amounts(10**9))
    return st.lists(line, min_size=1, max_size=4, unique_by=lambda x: x.line_id).map(tuple)


def refund_issued(**overrides: SS[Any]) -> SS[RefundIssued]:
    return _build(
        RefundIssued,
        {
            "refund_id": ids("r-"),
            "order_id": ids("o-"),
            "buyer_id": ids("u-"),
            "lines": refund_lines(),
        },
        overrides,
    )


def settlement_run(**overrides: SS[Any]) -> SS[SettlementRun]:
    return _build(SettlementRun, {"run_id": ids("run-"), "as_of": times()}, overrides)


def payout_requested(**overrides: SS[Any]) -> SS[PayoutRequested]:
    return _build(
        PayoutRequested,
        {
            "payout_id": ids("po-"),
            "sharer_id": ids("u-"),
            "amount": amounts(10**9),
            "currency": currencies(),
        },
        overrides,
    )


def payout_settled(**overrides: SS[Any]) -> SS[PayoutSettled]:
    return _build(
        PayoutSettled,
        {
            "payout_id": ids("po-"),
            "sharer_id": ids("u-"),
            "amount": st.none() | amounts(10**9),
            "currency": st.none() | currencies(),
        },
        overrides,
    )


def payout_failed(**overrides: SS[Any]) -> SS[PayoutFailed]:
    return _build(
        PayoutFailed,
        {
            "payout_id": ids("po-"),
            "sharer_id": ids("u-"),
            "amount": st.none() | amounts(10**9),
            "currency": st.none() | currencies(),
            "reason": st.none() | st.text(max_size=20),
        },
        overrides,
    )


EVENT_STRATEGIES: dict[str, Any] = {
    "sharer_enrolled": sharer_enrolled,
    "plan_published": plan_published,
    "click_recorded": click_recorded,
    "order_placed": order_placed,
    "order_completed": order_completed,
    "refund_issued": refund_issued,
    "settlement_run": settlement_run,
    "payout_requested": payout_requested,
    "payout_settled": payout_settled,
    "payout_failed": payout_failed,
}


def events() -> SS[Event]:
    """Any valid event, of any type."""
    return st.one_of([make() for make in EVENT_STRATEGIES.values()])


def buyer_events(buyer_id: SS[str] | None = None) -> SS[Event]:
    """Clicks, orders, completions and refunds (the orders-topic events)."""
    key = {"buyer_id": buyer_id} if buyer_id is not None else {}
    return st.one_of(
        click_recorded(**key), order_placed(**key), order_completed(**key), refund_issued(**key)
    )
