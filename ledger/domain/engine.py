"""The rules: one event plus state becomes entries, a rejection, or a wait (SPEC §3).

``apply(event, arrival, state)`` assumes the event passed ``validation.problem`` and was
not seen before (the processor checks both). It changes ``state`` only when the event
is applied, or for a rejected payout request, whose id is remembered as rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger.domain import referrals
from ledger.domain.attribution import attribute
from ledger.domain.entries import (
    PLATFORM_FEES,
    JournalEntry,
    Posting,
    merchant_account,
    sharer_account,
)
from ledger.domain.events import (
    ClickRecorded,
    Event,
    OrderCompleted,
    OrderPlaced,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    PlanPublished,
    RefundIssued,
    SettlementRun,
    SharerEnrolled,
)
from ledger.domain.model import (
    PAYOUT_FAILED,
    PAYOUT_INFLIGHT,
    PAYOUT_PAID,
    PAYOUT_REJECTED,
    Click,
    Line,
    Order,
    Payout,
    Sharer,
)
from ledger.domain.money import Split, split_lines, zero_split
from ledger.domain.plans import Plan
from ledger.domain.state import WorkingState
from ledger.domain.validation import MAX_AMOUNT, valid_event_id

RULE_ACCRUAL = "accrual/v1"
RULE_REFUND = "refund/v1"
RULE_SETTLEMENT = "settlement/v1"
RULE_PAYOUT_REQUEST = "payout-request/v1"
RULE_PAYOUT_SETTLED = "payout-settled/v1"
RULE_PAYOUT_FAILED = "payout-failed/v1"


@dataclass(frozen=True, slots=True)
class Applied:
    entries: tuple[JournalEntry, ...] = ()
    creates: tuple[str, ...] = ()  # references other events may wait for ("order:O1")
    note: str | None = None  # e.g. why an order earns nothing


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    message: str
    creates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Parked:
    waits_for: str
    creates: tuple[str, ...] = ()


Outcome = Applied | Rejected | Parked


def apply(event: Event, arrival: int, state: WorkingState) -> Outcome:
    return _HANDLERS[type(event)](event, arrival, state)


# --- enrollments and plans ---------------------------------------------------------------


def _enrolled(e: SharerEnrolled, arrival: int, state: WorkingState) -> Outcome:
    bad = referrals.enrollment_problem(e.sharer_id, e.upline_id, state)
    if bad:
        return Rejected(*bad)
    if e.upline_id is not None and state.sharer(e.upline_id) is None:
        return Parked(f"sharer:{e.upline_id}")
    state.add_sharer(Sharer(e.sharer_id, e.upline_id, e.occurred_at))
    return Applied(creates=(f"sharer:{e.sharer_id}",))


def _plan(e: PlanPublished, arrival: int, state: WorkingState) -> Outcome:
    if state.plans.get(e.plan_id) is not None:
        return Rejected("duplicate_plan_id", f"plan {e.plan_id!r} was already published")
    if state.plans.has_effective_from(e.effective_from):
        return Rejected(
            "duplicate_effective_from",
            f"a plan effective from {e.effective_from} already exists",
        )
    state.add_plan(Plan.from_event(e))
    return Applied()


# --- buyer events: clicks, orders, completions, refunds --------------------------------


def _click(e: ClickRecorded, arrival: int, state: WorkingState) -> Outcome:
    if state.click(e.click_id) is not None:
        return Rejected("duplicate_click_id", f"click {e.click_id!r} was already recorded")
    state.add_click(Click(e.click_id, e.buyer_id, e.sharer_id, e.occurred_at, arrival))
    return Applied()


def _commission(order: Order, plan: Plan, refunding: dict[str, int] | None = None) -> Split:
    """The order's commission on its remaining amounts, less ``refunding`` per line id."""
    less = refunding or {}
    remaining = [
        (line.remaining - less.get(line.line_id, 0), line.rate_bps) for line in order.lines.values()
    ]
    shares = plan.level_shares_bps[: len(order.levels)]
    return split_lines(remaining, plan.platform_fee_bps, shares)


def _levels_for(
    e: OrderPlaced, plan: Plan, state: WorkingState
) -> tuple[tuple[str, ...], str | None]:
    """(level sharer ids, None) or ((), why the order earns nothing)."""
    named = state.click(e.click_id) if e.click_id is not None else None
    candidates = state.clicks_of(e.buyer_id, since=e.occurred_at - plan.window_ms)
    click = attribute(named, candidates, e.buyer_id, e.occurred_at, plan.window_ms)
    if click is None:
        return (), "no_qualifying_click"
    if state.sharer(click.sharer_id) is None:
        return (), "sharer_not_enrolled"
    if click.sharer_id == e.buyer_id and not plan.self_purchase_allowed:
        return (), "self_purchase"
    return referrals.levels(click.sharer_id, state), None


def _order(e: OrderPlaced, arrival: int, state: WorkingState) -> Outcome:
    if state.order(e.order_id) is not None:
        return Rejected("duplicate_order_id", f"order {e.order_id!r} was already placed")
    plan = state.plans.in_force(e.occurred_at)
    levels: tuple[str, ...]
    why: str | None
    if plan is None:
        levels, why = (), "no_plan_in_force"
    else:
        levels, why = _levels_for(e, plan, state)
    default_rate = plan.default_rate_bps if plan else 0
    lines = {
        line.line_id: Line(
            line.line_id,
            line.amount,
            default_rate if line.merchant_rate_bps is None else line.merchant_rate_bps,
        )
        for line in e.lines
    }
    order = Order(
        order_id=e.order_id,
        buyer_id=e.buyer_id,
        merchant_id=e.merchant_id,
        currency=e.currency,
        occurred_at=e.occurred_at,
        plan_id=plan.plan_id if plan and levels else None,
        levels=levels,
        lines=lines,
        posted=zero_split(len(levels)),
        no_commission_reason=why,
    )
    entries: tuple[JournalEntry, ...] = ()
    if plan is not None and levels:
        order.posted = _commission(order, plan)
        entries = _money_entry(e, RULE_ACCRUAL, "accrual", order, order.posted, "pending")
        beyond = _beyond_bound(entries, state)
        if beyond is not None:
            return beyond
    state.add_order(order)
    state.post(entries)
    return Applied(entries, creates=(f"order:{e.order_id}",), note=why)


def _beyond_bound(entries: Iterable[JournalEntry], state: WorkingState) -> Rejected | None:
    """SPEC §3 "Bounds": a rejection if applying ``entries`` would take an account beyond
    ±2^62 (checked before anything changes, so a rejected event leaves no trace)."""
    beyond = state.beyond_bound(entries)
    if beyond is None:
        return None
    account, currency, balance = beyond
    return Rejected(
        "balance_out_of_range",
        f"{account} would reach {balance} {currency}, beyond ±2^62 minor units",
    )


def _money_entry(
    e: Event, rule: str, kind: str, order: Order, delta: Split, bucket: str
) -> tuple[JournalEntry, ...]:
    """Postings of a commission change ``delta`` (accrual > 0, reversal < 0) on ``order``."""
    cur = order.currency
    postings = [
        Posting(merchant_account(order.merchant_id), cur, -delta.merchant_charge),
        Posting(PLATFORM_FEES, cur, delta.fee),
    ] + [
        Posting(sharer_account(sharer, bucket), cur, amount)
        for sharer, amount in zip(order.levels, delta.levels, strict=True)
    ]
    postings = [p for p in postings if p.amount != 0]
    if not postings:
        return ()
    entry = JournalEntry(
        event_id=e.event_id,
        ordinal=0,
        kind=kind,
        rule=rule,
        occurred_at=e.occurred_at,
        postings=tuple(postings),
        plan_id=order.plan_id,
        order_id=order.order_id,
    )
    return (entry,)


def _completed(e: OrderCompleted, arrival: int, state: WorkingState) -> Outcome:
    order = state.order(e.order_id)
    if order is None:
        return Parked(f"order:{e.order_id}")
    if order.buyer_id != e.buyer_id:
        return Rejected("buyer_mismatch", f"order {e.order_id!r} belongs to another buyer")
    if order.completed_at is not None:
        return Rejected("already_completed", f"order {e.order_id!r} was already completed")
    order.completed_at = e.occurred_at
    plan = state.plans.get(order.plan_id) if order.plan_id else None
    if plan is not None:
        order.settle_due = e.occurred_at + plan.frozen_ms
    state.order_changed(order)
    return Applied()


def _refund(e: RefundIssued, arrival: int, state: WorkingState) -> Outcome:
    order = state.order(e.order_id)
    if order is None:
        return Parked(f"order:{e.order_id}")
    if state.refund_seen(e.refund_id):
        return Rejected("duplicate_refund_id", f"refund {e.refund_id!r} was already applied")
    if order.buyer_id != e.buyer_id:
        return Rejected("buyer_mismatch", f"order {e.order_id!r} belongs to another buyer")
    for line in e.lines:
        known = order.lines.get(line.line_id)
        if known is None:
            return Rejected("unknown_line", f"order {e.order_id!r} has no line {line.line_id!r}")
        if line.amount <= 0:
            return Rejected("invalid_refund_amount", f"line {line.line_id!r}: amount must be > 0")
        if line.amount > known.remaining:
            return Rejected(
                "over_refund",
                f"line {line.line_id!r}: refund {line.amount} exceeds remaining {known.remaining}",
            )
    plan = state.plans.get(order.plan_id) if order.plan_id else None
    entries: tuple[JournalEntry, ...] = ()
    now = order.posted
    if plan is not None and order.levels:
        now = _commission(order, plan, {line.line_id: line.amount for line in e.lines})
        # once settled, a reversal comes out of available: a clawback, may go negative
        bucket = "available" if order.settled else "pending"
        entries = _money_entry(e, RULE_REFUND, "reversal", order, now.minus(order.posted), bucket)
        beyond = _beyond_bound(entries, state)
        if beyond is not None:
            return beyond
    for line in e.lines:
        order.lines[line.line_id].refunded += line.amount
    order.posted = now
    state.add_refund(e.refund_id, e.order_id)
    state.order_changed(order)
    state.post(entries)
    if plan is None or not order.levels:
        return Applied(note="order_earns_nothing")
    return Applied(entries)


# --- finance commands: settlement runs and payouts -----------------------------------


def _settlement(e: SettlementRun, arrival: int, state: WorkingState) -> Outcome:
    if state.run_seen(e.run_id):
        return Rejected("duplicate_run_id", f"settlement run {e.run_id!r} already ran")
    if e.as_of > e.occurred_at:  # SPEC §3: only time that has passed releases commission
        return Rejected(
            "as_of_in_future",
            f"as_of {e.as_of} is later than the run's own occurred_at {e.occurred_at}",
        )
    due = state.orders_due(e.as_of)
    entries: list[JournalEntry] = []
    for order in due:
        postings: list[Posting] = []
        for sharer, amount in zip(order.levels, order.posted.levels, strict=True):
            if amount:
                postings.append(Posting(sharer_account(sharer, "pending"), order.currency, -amount))
                postings.append(
                    Posting(sharer_account(sharer, "available"), order.currency, amount)
                )
        if postings:
            entries.append(
                JournalEntry(
                    event_id=e.event_id,
                    ordinal=len(entries),
                    kind="settlement",
                    rule=RULE_SETTLEMENT,
                    occurred_at=e.occurred_at,
                    postings=tuple(postings),
                    plan_id=order.plan_id,
                    order_id=order.order_id,
                )
            )
    beyond = _beyond_bound(entries, state)
    if beyond is not None:
        return beyond
    state.add_run(e.run_id, e.as_of)
    for order in due:
        order.settled_by = e.run_id
        state.order_changed(order)
    state.post(entries)
    return Applied(tuple(entries))


def _payout_requested(e: PayoutRequested, arrival: int, state: WorkingState) -> Outcome:
    if state.payout(e.payout_id) is not None:
        return Rejected("duplicate_payout_id", f"payout {e.payout_id!r} was already requested")
    bad = _payout_problem(e, state)
    entry = _payout_entry(
        e,
        RULE_PAYOUT_REQUEST,
        "payout_requested",
        e.sharer_id,
        e.currency,
        e.amount,
        "available",
        "inflight",
    )
    if bad is None:
        beyond = _beyond_bound((entry,), state)
        bad = (beyond.reason, beyond.message) if beyond is not None else None
    if bad is not None:
        state.add_payout(Payout(e.payout_id, e.sharer_id, e.currency, e.amount, PAYOUT_REJECTED))
        return Rejected(*bad, creates=(f"payout:{e.payout_id}",))
    state.add_payout(Payout(e.payout_id, e.sharer_id, e.currency, e.amount, PAYOUT_INFLIGHT))
    state.post((entry,))
    return Applied((entry,), creates=(f"payout:{e.payout_id}",))


def remember_malformed(event: Event, state: WorkingState) -> tuple[str, ...]:
    """A malformed payout request is still a request that was seen and rejected: remember
    its id (when usable) so that its settled/failed is rejected, not left waiting."""
    if not isinstance(event, PayoutRequested):
        return ()
    usable = (
        valid_event_id(event.payout_id)
        and valid_event_id(event.sharer_id)
        and isinstance(event.currency, str)
        and len(event.currency) <= 3
        and type(event.amount) is int
        and abs(event.amount) <= MAX_AMOUNT
    )
    if not usable or state.payout(event.payout_id) is not None:
        return ()
    state.add_payout(
        Payout(event.payout_id, event.sharer_id, event.currency, event.amount, PAYOUT_REJECTED)
    )
    return (f"payout:{event.payout_id}",)


def _payout_problem(e: PayoutRequested, state: WorkingState) -> tuple[str, str] | None:
    if e.amount <= 0:
        return ("invalid_amount", f"payout amount must be > 0, got {e.amount}")
    plan = state.plans.in_force(e.occurred_at)
    if plan is None:
        return ("no_plan_in_force", "no plan is in force at the request's time")
    minimum = plan.min_payout(e.currency)
    if minimum is None:
        return (
            "unknown_currency",
            f"plan {plan.plan_id!r} lists no payout minimum for {e.currency}",
        )
    if e.amount < minimum:
        return (
            "below_minimum",
            f"{e.amount} is under the minimum payout of {minimum} {e.currency}",
        )
    available = state.available(e.sharer_id, e.currency)
    if e.amount > available:
        return (
            "insufficient_available",
            f"{e.amount} {e.currency} exceeds the available balance of {available}",
        )
    return None


def _payout_ended(e: PayoutSettled | PayoutFailed, arrival: int, state: WorkingState) -> Outcome:
    payout = state.payout(e.payout_id)
    if payout is None:
        return Parked(f"payout:{e.payout_id}")
    if payout.state != PAYOUT_INFLIGHT:
        return Rejected("payout_not_inflight", f"payout {e.payout_id!r} is {payout.state}")
    for name, given, expected in (
        ("sharer_id", e.sharer_id, payout.sharer_id),
        ("amount", e.amount, payout.amount),
        ("currency", e.currency, payout.currency),
    ):
        if given is not None and given != expected:
            return Rejected(
                "payout_mismatch",
                f"payout {e.payout_id!r}: {name} {given!r} differs from the request's {expected!r}",
            )
    settled = isinstance(e, PayoutSettled)
    entry = _payout_entry(
        e,
        RULE_PAYOUT_SETTLED if settled else RULE_PAYOUT_FAILED,
        "payout_settled" if settled else "payout_failed",
        payout.sharer_id,
        payout.currency,
        payout.amount,
        "inflight",
        "paid" if settled else "available",
    )
    beyond = _beyond_bound((entry,), state)
    if beyond is not None:
        return beyond
    payout.state = PAYOUT_PAID if settled else PAYOUT_FAILED
    state.payout_changed(payout)
    state.post((entry,))
    return Applied((entry,))


def _payout_entry(
    e: Event, rule: str, kind: str, sharer: str, currency: str, amount: int, src: str, dst: str
) -> JournalEntry:
    return JournalEntry(
        event_id=e.event_id,
        ordinal=0,
        kind=kind,
        rule=rule,
        occurred_at=e.occurred_at,
        postings=(
            Posting(sharer_account(sharer, src), currency, -amount),
            Posting(sharer_account(sharer, dst), currency, amount),
        ),
        payout_id=getattr(e, "payout_id", None),
    )


_HANDLERS: dict[type, Callable[..., Outcome]] = {
    SharerEnrolled: _enrolled,
    PlanPublished: _plan,
    ClickRecorded: _click,
    OrderPlaced: _order,
    OrderCompleted: _completed,
    RefundIssued: _refund,
    SettlementRun: _settlement,
    PayoutRequested: _payout_requested,
    PayoutSettled: _payout_ended,
    PayoutFailed: _payout_ended,
}
