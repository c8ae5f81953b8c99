"""Properties of the engine over random coherent event streams (tests/support/streams.py).

SPEC §4.2 double entry, §4.3 exactly-once, §4.5 determinism and the reordering promise,
§3 "never more than 3 levels", refunds back to zero, conservation of sharer money, and a
reference model (``Oracle``) that re-derives from the spec every accrual, reversal,
settlement and payout decision the engine made, walking its results in order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.events import (
    ClickRecorded,
    Event,
    OrderCompleted,
    OrderPlaced,
    PayoutRequested,
    PayoutSettled,
    PlanPublished,
    RefundIssued,
    SettlementRun,
    SharerEnrolled,
)
from ledger.domain.memory import InMemoryLedger
from ledger.domain.processor import Duplicate
from tests.support.streams import DAY, Ev, interleavings, streams

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ingest(events: list[Event]) -> InMemoryLedger:
    ledger = InMemoryLedger()
    ledger.ingest(events)
    return ledger


def applied(ledger: InMemoryLedger, kind: type) -> list:  # type: ignore[type-arg]
    return [
        r.incoming.event
        for r in ledger.results
        if isinstance(r.outcome, Applied) and isinstance(r.incoming.event, kind)
    ]


# --- §4.2 double entry, currencies -----------------------------------------------------


@FAST
@given(streams())
def test_every_entry_balances_per_currency_in_integers(events: list[Event]) -> None:
    ledger = ingest(events)
    for entry in ledger.entries:
        totals: dict[str, int] = defaultdict(int)
        for posting in entry.postings:
            assert type(posting.amount) is int
            totals[posting.currency] += posting.amount
        assert set(totals.values()) == {0}, entry


@FAST
@given(streams())
def test_entries_carry_the_currency_of_their_order_or_payout(events: list[Event]) -> None:
    """No entry mixes currencies: an order's entries move its currency only, a payout's
    entries the request's currency only."""
    ledger = ingest(events)
    order_currency = {}
    for order in applied(ledger, OrderPlaced):
        order_currency.setdefault(order.order_id, order.currency)
    payout_currency = {p.payout_id: p.currency for p in applied(ledger, PayoutRequested)}
    for entry in ledger.entries:
        currencies = {p.currency for p in entry.postings}
        if entry.order_id is not None:
            assert currencies == {order_currency[entry.order_id]}
        else:
            assert currencies == {payout_currency[entry.payout_id]}


# --- §4.3 exactly once, §4.5 determinism -----------------------------------------------


@st.composite
def with_redeliveries(draw) -> tuple[list[Event], list[Event]]:  # type: ignore[no-untyped-def]
    events = draw(streams())
    noisy = list(events)
    for _ in range(draw(st.integers(1, 8))):
        original = draw(st.integers(0, len(events) - 1))
        first = noisy.index(events[original])
        noisy.insert(draw(st.integers(first + 1, len(noisy))), events[original])
    return events, noisy


@FAST
@given(with_redeliveries())
def test_redelivering_events_later_changes_nothing(pair: tuple[list[Event], list[Event]]) -> None:
    events, noisy = pair
    clean, redelivered = ingest(events), ingest(noisy)
    assert redelivered.entries == clean.entries
    assert redelivered.balances() == clean.balances()
    assert redelivered.rejected == clean.rejected
    assert redelivered.parked() == clean.parked()


@FAST
@given(streams())
def test_rerunning_a_stream_gives_identical_entries(events: list[Event]) -> None:
    first, second = ingest(events), ingest(events)
    assert second.entries == first.entries
    assert second.rejected == first.rejected


@FAST
@given(streams(), st.data())
def test_batching_does_not_change_the_ledger(events: list[Event], data: st.DataObject) -> None:
    """The same stream ingested in batches of any sizes gives the identical ledger."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    batched = InMemoryLedger()
    start = 0
    for cut in [*cuts, len(events)]:
        batched.ingest(events[start:cut])
        start = max(start, cut)
    whole = ingest(events)
    assert batched.entries == whole.entries
    assert batched.rejected == whole.rejected


@SLOW
@given(streams(), st.data())
def test_interleaving_buyers_between_barriers_keeps_final_balances(
    events: list[Event], data: st.DataObject
) -> None:
    reordered = data.draw(interleavings(events))
    assert sorted(map(repr, reordered)) == sorted(map(repr, events))
    assert ingest(reordered).balances() == ingest(events).balances()


# --- §3 money properties -----------------------------------------------------------------


@FAST
@given(streams())
def test_no_accrual_pays_more_than_three_sharers_and_all_go_to_pending(events: list[Event]) -> None:
    ledger = ingest(events)
    for entry in ledger.entries:
        sharers = [p.account for p in entry.postings if p.account.startswith("sharer:")]
        if entry.kind == "accrual":
            assert len(sharers) <= 3
            assert all(a.endswith(":pending") for a in sharers)
            assert all(p.amount > 0 for p in entry.postings if p.account.startswith("sharer:"))


@FAST
@given(streams())
def test_sharer_buckets_sum_to_accrued_minus_reversed(events: list[Event]) -> None:
    ledger = ingest(events)
    net: dict[tuple[str, str], int] = defaultdict(int)
    for entry in ledger.entries:
        if entry.kind in ("accrual", "reversal"):
            for p in entry.postings:
                if p.account.startswith("sharer:"):
                    net[(p.account.split(":")[1], p.currency)] += p.amount
    held: dict[tuple[str, str], int] = defaultdict(int)
    for (account, currency), amount in ledger.balances().items():
        if account.startswith("sharer:"):
            held[(account.split(":")[1], currency)] += amount
    assert {k: v for k, v in held.items() if v} == {k: v for k, v in net.items() if v}


def refund_everything(ledger: InMemoryLedger, at: int) -> list[Event]:
    """One refund per placed order of whatever its lines still hold, by the ledger's own
    record of which refunds it applied."""
    refunded: dict[tuple[str, str], int] = defaultdict(int)
    for refund in applied(ledger, RefundIssued):
        for line in refund.lines:
            refunded[(refund.order_id, line.line_id)] += line.amount
    ev = Ev("final-")
    out: list[Event] = []
    seen: set[str] = set()
    for order in applied(ledger, OrderPlaced):
        if order.order_id in seen:
            continue
        seen.add(order.order_id)
        rest = [
            (line.line_id, line.amount - refunded[(order.order_id, line.line_id)])
            for line in order.lines
        ]
        rest = [(line_id, left) for line_id, left in rest if left > 0]
        if rest:
            out.append(
                ev.refund(f"final-{order.order_id}", order.order_id, order.buyer_id, rest, at)
            )
    return out


@SLOW
@given(streams(payouts=False))
def test_refunding_every_order_in_full_returns_every_balance_to_zero(events: list[Event]) -> None:
    ledger = ingest(events)
    last = max(e.occurred_at for e in events)
    ledger.ingest(refund_everything(ledger, last + DAY))
    final = [r for r in ledger.rejected if r[0].startswith("final-")]
    assert final == []
    assert ledger.balances() == {}


@SLOW
@given(streams(payouts=True))
def test_refunding_every_order_in_full_leaves_only_paid_out_money(events: list[Event]) -> None:
    """With payouts, each sharer's buckets still sum to 0 per currency (what was paid or is
    in flight is owed back from available), and platform and merchants are at exactly 0."""
    ledger = ingest(events)
    last = max(e.occurred_at for e in events)
    ledger.ingest(refund_everything(ledger, last + DAY))
    per_sharer: dict[tuple[str, str], int] = defaultdict(int)
    for (account, currency), amount in ledger.balances().items():
        assert account.startswith("sharer:"), (account, amount)
        assert not account.endswith(":pending")
        per_sharer[(account.split(":")[1], currency)] += amount
    assert set(per_sharer.values()) <= {0}


# --- a reference model of SPEC §3 -----------------------------------------------------


def split(
    lines: list[tuple[int, int]], fee_bps: int, shares: tuple[int, ...]
) -> tuple[int, list[int]]:
    """(fee, level amounts) of SPEC §3's formula, lines as (remaining amount, rate bps)."""
    pool = sum((Fraction(amount * rate, 10_000) for amount, rate in lines), Fraction(0))
    fee = math.floor(pool * fee_bps / 10_000)
    net = pool * (10_000 - fee_bps) / 10_000
    return fee, [math.floor(net * share / 10_000) for share in shares]


@dataclass
class _Order:
    event: OrderPlaced
    plan: PlanPublished | None
    levels: tuple[str, ...]
    rates: dict[str, int]
    refunded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    completed_at: int | None = None
    settled: bool = False

    def split(self) -> tuple[int, list[int]]:
        if self.plan is None or not self.levels:
            return 0, []
        lines = [
            (line.amount - self.refunded[line.line_id], self.rates[line.line_id])
            for line in self.event.lines
        ]
        return split(
            lines, self.plan.platform_fee_bps, tuple(self.plan.level_shares_bps[: len(self.levels)])
        )


class Oracle:
    """Walks a ledger's results in order and checks each against SPEC §3."""

    def __init__(self) -> None:
        self.plans: list[PlanPublished] = []
        self.uplines: dict[str, str | None] = {}
        self.waiting: dict[str, SharerEnrolled] = {}  # enrollments waiting for their upline
        self.clicks: dict[str, tuple[ClickRecorded, int]] = {}
        self.buyer_clicks: dict[str, list[tuple[ClickRecorded, int]]] = defaultdict(list)
        self.orders: dict[str, _Order] = {}
        self.refund_ids: set[str] = set()
        self.payout_ids: set[str] = set()
        self.inflight: dict[str, PayoutRequested | None] = {}  # None: rejected or ended
        self.balances: dict[tuple[str, str], int] = defaultdict(int)

    def plan_at(self, at: int) -> PlanPublished | None:
        live = [p for p in self.plans if p.effective_from <= at]
        return max(live, key=lambda p: p.effective_from) if live else None

    def attributed(self, order: OrderPlaced, plan: PlanPublished) -> ClickRecorded | None:
        window = plan.attribution_window_days * DAY

        def ok(click: ClickRecorded) -> bool:
            return (
                click.buyer_id == order.buyer_id
                and order.occurred_at - window <= click.occurred_at <= order.occurred_at
            )

        named = self.clicks.get(order.click_id) if order.click_id else None
        if named is not None and ok(named[0]):
            return named[0]
        fitting = [(c, pos) for c, pos in self.buyer_clicks[order.buyer_id] if ok(c)]
        if not fitting:
            return None
        return min(fitting, key=lambda cp: (-cp[0].occurred_at, cp[1]))[0]

    def levels(self, order: OrderPlaced, plan: PlanPublished | None) -> tuple[str, ...]:
        if plan is None:
            return ()
        click = self.attributed(order, plan)
        if click is None or click.sharer_id not in self.uplines:
            return ()
        if click.sharer_id == order.buyer_id and not plan.self_purchase_allowed:
            return ()
        chain = [click.sharer_id]
        while len(chain) < 3 and self.uplines[chain[-1]] is not None:
            chain.append(self.uplines[chain[-1]])  # type: ignore[arg-type]
        return tuple(chain)

    @staticmethod
    def money(order: _Order, fee: int, levels: list[int], bucket: str) -> dict[str, int]:
        cur = order.event.currency
        out = {
            (f"merchant:{order.event.merchant_id}:charges", cur): -(fee + sum(levels)),
            ("platform:fees", cur): fee,
        }
        for sharer, amount in zip(order.levels, levels, strict=True):
            out[(f"sharer:{sharer}:{bucket}", cur)] = amount
        return {k: v for k, v in out.items() if v}

    @staticmethod
    def posted(entries: tuple[JournalEntry, ...]) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = defaultdict(int)
        for entry in entries:
            for p in entry.postings:
                out[(p.account, p.currency)] += p.amount
        return {k: v for k, v in out.items() if v}

    def check(self, ledger: InMemoryLedger) -> None:
        for position, result in enumerate(ledger.results):
            if isinstance(result.outcome, Duplicate):
                continue
            if isinstance(result.outcome, Rejected) and result.outcome.reason == "invalid_value":
                continue  # malformed: never reached the rules
            handler = getattr(self, "on_" + type(result.incoming.event).__name__)
            handler(result.incoming.event, result.outcome, position)
            if isinstance(result.outcome, Applied):
                for key, amount in self.posted(result.outcome.entries).items():
                    self.balances[key] += amount

    # one handler per event type: the expected outcome, then the state change

    def on_PlanPublished(self, e: PlanPublished, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        clash = any(
            p.plan_id == e.plan_id or p.effective_from == e.effective_from for p in self.plans
        )
        assert isinstance(outcome, Rejected) == clash, (e, outcome)
        if not clash:
            self.plans.append(e)

    def on_SharerEnrolled(self, e: SharerEnrolled, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        if self.waiting.get(e.sharer_id) == e:  # released: it is no longer waiting
            del self.waiting[e.sharer_id]
        known = e.sharer_id in self.uplines or e.sharer_id in self.waiting
        cycle, current, seen = False, e.upline_id, set()
        while current is not None and not cycle and current not in seen:
            seen.add(current)
            cycle = current == e.sharer_id
            if current in self.uplines:
                current = self.uplines[current]
            else:
                waiting = self.waiting.get(current)
                current = waiting.upline_id if waiting is not None else None
        if known:
            assert isinstance(outcome, Rejected) and outcome.reason == "already_enrolled", outcome
        elif cycle:
            assert isinstance(outcome, Rejected) and outcome.reason == "enrollment_cycle", outcome
        elif e.upline_id is not None and e.upline_id not in self.uplines:
            assert isinstance(outcome, Parked), (e, outcome)
            self.waiting[e.sharer_id] = e
        else:
            assert isinstance(outcome, Applied), (e, outcome)
            self.uplines[e.sharer_id] = e.upline_id

    def on_ClickRecorded(self, e: ClickRecorded, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        if not e.click_id:
            return
        assert isinstance(outcome, Applied) == (e.click_id not in self.clicks), (e, outcome)
        if isinstance(outcome, Applied):
            self.clicks[e.click_id] = (e, position)
            self.buyer_clicks[e.buyer_id].append((e, position))

    def on_OrderPlaced(self, e: OrderPlaced, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(outcome, Applied) == (e.order_id not in self.orders), (e, outcome)
        if not isinstance(outcome, Applied):
            return
        plan = self.plan_at(e.occurred_at)
        levels = self.levels(e, plan)
        default = plan.default_rate_bps if plan else 0
        rates = {
            line.line_id: default if line.merchant_rate_bps is None else line.merchant_rate_bps
            for line in e.lines
        }
        order = _Order(e, plan, levels, rates)
        self.orders[e.order_id] = order
        fee, amounts = order.split()
        assert self.posted(outcome.entries) == self.money(order, fee, amounts, "pending"), e
        assert all(entry.kind == "accrual" for entry in outcome.entries)

    def on_OrderCompleted(self, e: OrderCompleted, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        order = self.orders.get(e.order_id)
        if order is None:
            assert isinstance(outcome, Parked)
            return
        ok = order.completed_at is None and order.event.buyer_id == e.buyer_id
        assert isinstance(outcome, Applied) == ok, (e, outcome)
        if ok:
            order.completed_at = e.occurred_at

    def on_RefundIssued(self, e: RefundIssued, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        order = self.orders.get(e.order_id)
        if order is None:
            assert isinstance(outcome, Parked)
            return
        amounts = {line.line_id: line.amount for line in order.event.lines}
        ok = (
            e.refund_id not in self.refund_ids
            and order.event.buyer_id == e.buyer_id
            and all(
                line.line_id in amounts
                and 0 < line.amount <= amounts[line.line_id] - order.refunded[line.line_id]
                for line in e.lines
            )
        )
        assert isinstance(outcome, Applied) == ok, (e, outcome)
        if not ok:
            return
        self.refund_ids.add(e.refund_id)
        fee0, levels0 = order.split()
        for line in e.lines:
            order.refunded[line.line_id] += line.amount
        fee1, levels1 = order.split()
        delta = [b - a for a, b in zip(levels0, levels1, strict=True)]
        bucket = "available" if order.settled else "pending"
        assert self.posted(outcome.entries) == self.money(order, fee1 - fee0, delta, bucket), e

    def on_SettlementRun(self, e: SettlementRun, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        if e.as_of > e.occurred_at:
            assert isinstance(outcome, Rejected) and outcome.reason == "as_of_in_future", e
            return
        assert isinstance(outcome, Applied)
        expected: dict[tuple[str, str], int] = defaultdict(int)
        for order in self.orders.values():
            if order.settled or order.completed_at is None or not order.levels:
                continue
            assert order.plan is not None
            if order.completed_at + order.plan.frozen_days * DAY > e.as_of:
                continue
            order.settled = True
            _, amounts = order.split()
            for sharer, amount in zip(order.levels, amounts, strict=True):
                expected[(f"sharer:{sharer}:pending", order.event.currency)] -= amount
                expected[(f"sharer:{sharer}:available", order.event.currency)] += amount
        assert self.posted(outcome.entries) == {k: v for k, v in expected.items() if v}

    def on_PayoutRequested(self, e: PayoutRequested, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        plan = self.plan_at(e.occurred_at)
        minimum = {m.currency: m.amount for m in plan.min_payouts}.get(e.currency) if plan else None
        available = self.balances[(f"sharer:{e.sharer_id}:available", e.currency)]
        problems = {
            "duplicate_payout_id": e.payout_id in self.payout_ids,
            "invalid_amount": e.amount <= 0,
            "no_plan_in_force": plan is None,
            "unknown_currency": plan is not None and minimum is None,
            "below_minimum": minimum is not None and e.amount < minimum,
            "insufficient_available": e.amount > available,
        }
        self.payout_ids.add(e.payout_id)
        if isinstance(outcome, Rejected):
            assert problems[outcome.reason], (e, outcome, available)
            self.inflight.setdefault(e.payout_id, None)
        else:
            assert isinstance(outcome, Applied) and not any(problems.values()), (e, problems)
            self.inflight[e.payout_id] = e
            assert self.posted(outcome.entries) == {
                (f"sharer:{e.sharer_id}:available", e.currency): -e.amount,
                (f"sharer:{e.sharer_id}:inflight", e.currency): e.amount,
            }

    def on_PayoutSettled(self, e, outcome, position: int) -> None:  # type: ignore[no-untyped-def]
        if e.payout_id not in self.inflight:
            assert isinstance(outcome, Parked), (e, outcome)
            return
        request = self.inflight[e.payout_id]
        ok = (
            request is not None
            and e.sharer_id == request.sharer_id
            and all(
                given is None or given == wanted
                for given, wanted in ((e.amount, request.amount), (e.currency, request.currency))
            )
        )
        assert isinstance(outcome, Applied) == ok, (e, outcome)
        if not ok:
            return
        assert request is not None
        self.inflight[e.payout_id] = None
        to = "paid" if isinstance(e, PayoutSettled) else "available"
        assert self.posted(outcome.entries) == {
            (f"sharer:{e.sharer_id}:inflight", request.currency): -request.amount,
            (f"sharer:{e.sharer_id}:{to}", request.currency): request.amount,
        }

    on_PayoutFailed = on_PayoutSettled


@SLOW
@given(streams())
def test_every_decision_matches_the_reference_model(events: list[Event]) -> None:
    """Accruals (plan in force, attribution, ≤ 3 levels of the attributed click's chain, the
    formula), cumulative reversals in the right bucket, settlements of due orders, refund and
    payout acceptance: all re-derived from SPEC §3 and compared to the engine's results."""
    ledger = ingest(events)
    oracle = Oracle()
    oracle.check(ledger)
