"""The rules: one event plus state becomes entries, a rejection, or a wait (SPEC §3).

``apply(event, arrival, state)`` assumes the event passed ``validation.problem`` and was
not seen before (the processor checks both). It changes ``state`` only when the event
is applied, or for a rejected payout request, whose id is remembered as rejected.

Each event type has one entry in ``RULES``: its handler and, beside it, what the handler
reads (its ``needs``), which the service loads for a whole batch before running it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

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
from ledger.domain.kinds import Bucket, EntryKind
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
from ledger.domain.needs import Needs
from ledger.domain.plans import Plan
from ledger.domain.reasons import Reason
from ledger.domain.refs import order_ref, payout_ref, sharer_ref
from ledger.domain.state import WorkingState
from ledger.domain.validation import MAX_AMOUNT, valid_event_id

E = TypeVar("E", bound=Event)  # an event type, in rule registration

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
    reason: Reason
    message: str
    creates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Parked:
    waits_for: str
    creates: tuple[str, ...] = ()


Outcome = Applied | Rejected | Parked


def apply(event: Event, arrival: int, state: WorkingState) -> Outcome:
    return RULES[type(event)].apply(event, arrival, state)


# --- enrollments and plans ---------------------------------------------------------------


def _enrolled(e: SharerEnrolled, arrival: int, state: WorkingState) -> Outcome:
    bad = referrals.enrollment_problem(e.sharer_id, e.upline_id, state)
    if bad:
        return Rejected(*bad)
    if e.upline_id is not None and state.sharer(e.upline_id) is None:
        return Parked(sharer_ref(e.upline_id))
    state.add_sharer(Sharer(e.sharer_id, e.upline_id, e.occurred_at))
    return Applied(creates=(sharer_ref(e.sharer_id),))


def _enrolled_needs(e: SharerEnrolled, needs: Needs) -> None:
    needs.sharers.add(e.sharer_id)
    needs.refs.add(sharer_ref(e.sharer_id))
    needs.enrollments.add(e.sharer_id)  # enrollment_problem: is one waiting already?
    if e.upline_id is not None:
        needs.sharers.add(e.upline_id)
        needs.enrollments.add(e.upline_id)


def _plan(e: PlanPublished, arrival: int, state: WorkingState) -> Outcome:
    if state.plans.get(e.plan_id) is not None:
        return Rejected(Reason.DUPLICATE_PLAN_ID, f"plan {e.plan_id!r} was already published")
    if state.plans.has_effective_from(e.effective_from):
        return Rejected(
            Reason.DUPLICATE_EFFECTIVE_FROM,
            f"a plan effective from {e.effective_from} already exists",
        )
    state.add_plan(Plan.from_event(e))
    return Applied()


def _plan_needs(e: PlanPublished, needs: Needs) -> None:
    """Nothing: every plan is loaded with the state."""


# --- buyer events: clicks, orders, completions, refunds --------------------------------


def _click(e: ClickRecorded, arrival: int, state: WorkingState) -> Outcome:
    if state.click(e.click_id) is not None:
        return Rejected(Reason.DUPLICATE_CLICK_ID, f"click {e.click_id!r} was already recorded")
    state.add_click(Click(e.click_id, e.buyer_id, e.sharer_id, e.occurred_at, arrival))
    return Applied()


def _click_needs(e: ClickRecorded, needs: Needs) -> None:
    needs.new_clicks.add(e.click_id)
    needs.click_sharers.setdefault(e.buyer_id, set()).add(e.sharer_id)


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
    candidates = state.candidate_clicks(e.buyer_id, e.occurred_at, e.occurred_at - plan.window_ms)
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
        return Rejected(Reason.DUPLICATE_ORDER_ID, f"order {e.order_id!r} was already placed")
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
        order = replace(order, posted=_commission(order, plan))
        entries = _money_entry(e, RULE_ACCRUAL, "accrual", order, order.posted, "pending")
        beyond = _beyond_bound(entries, state)
        if beyond is not None:
            return beyond
    state.add_order(order)
    state.post(entries)
    return Applied(entries, creates=(order_ref(e.order_id),), note=why)


def _order_needs(e: OrderPlaced, needs: Needs) -> None:
    needs.new_orders.add(e.order_id)
    needs.refs.add(order_ref(e.order_id))
    needs.attributions.add((e.buyer_id, e.occurred_at))
    if e.click_id:
        needs.named_clicks.add(e.click_id)


def _beyond_bound(entries: Iterable[JournalEntry], state: WorkingState) -> Rejected | None:
    """SPEC §3 "Bounds": a rejection if applying ``entries`` would take an account beyond
    ±2^62 (checked before anything changes, so a rejected event leaves no trace)."""
    beyond = state.beyond_bound(entries)
    return None if beyond is None else _out_of_range(*beyond)


def _out_of_range(account: str, currency: str, balance: int) -> Rejected:
    return Rejected(
        Reason.BALANCE_OUT_OF_RANGE,
        f"{account} would reach {balance} {currency}, beyond ±2^62 minor units",
    )


def _money_entry(
    e: Event, rule: str, kind: EntryKind, order: Order, delta: Split, bucket: Bucket
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
        return Parked(order_ref(e.order_id))
    if order.buyer_id != e.buyer_id:
        return Rejected(Reason.BUYER_MISMATCH, f"order {e.order_id!r} belongs to another buyer")
    if order.completed_at is not None:
        return Rejected(Reason.ALREADY_COMPLETED, f"order {e.order_id!r} was already completed")
    plan = state.plans.get(order.plan_id) if order.plan_id else None
    settle_due = e.occurred_at + plan.frozen_ms if plan is not None else order.settle_due
    state.update_order(replace(order, completed_at=e.occurred_at, settle_due=settle_due))
    return Applied()


def _completed_needs(e: OrderCompleted, needs: Needs) -> None:
    needs.orders.add(e.order_id)


def _refund(e: RefundIssued, arrival: int, state: WorkingState) -> Outcome:
    order = state.order(e.order_id)
    if order is None:
        return Parked(order_ref(e.order_id))
    if state.refund_seen(e.refund_id):
        return Rejected(Reason.DUPLICATE_REFUND_ID, f"refund {e.refund_id!r} was already applied")
    if order.buyer_id != e.buyer_id:
        return Rejected(Reason.BUYER_MISMATCH, f"order {e.order_id!r} belongs to another buyer")
    for line in e.lines:
        known = order.lines.get(line.line_id)
        if known is None:
            return Rejected(
                Reason.UNKNOWN_LINE, f"order {e.order_id!r} has no line {line.line_id!r}"
            )
        if line.amount <= 0:
            return Rejected(
                Reason.INVALID_REFUND_AMOUNT, f"line {line.line_id!r}: amount must be > 0"
            )
        if line.amount > known.remaining:
            return Rejected(
                Reason.OVER_REFUND,
                f"line {line.line_id!r}: refund {line.amount} exceeds remaining {known.remaining}",
            )
    plan = state.plans.get(order.plan_id) if order.plan_id else None
    entries: tuple[JournalEntry, ...] = ()
    now = order.posted
    if plan is not None and order.levels:
        now = _commission(order, plan, {line.line_id: line.amount for line in e.lines})
        # once settled, a reversal comes out of available: a clawback, may go negative
        bucket: Bucket = "available" if order.settled else "pending"
        entries = _money_entry(e, RULE_REFUND, "reversal", order, now.minus(order.posted), bucket)
        beyond = _beyond_bound(entries, state)
        if beyond is not None:
            return beyond
    lines = dict(order.lines)
    for line in e.lines:
        refunded = lines[line.line_id]
        lines[line.line_id] = replace(refunded, refunded=refunded.refunded + line.amount)
    state.add_refund(e.refund_id, e.order_id)
    state.update_order(replace(order, lines=lines, posted=now))
    state.post(entries)
    if plan is None or not order.levels:
        return Applied(note="order_earns_nothing")
    return Applied(entries)


def _refund_needs(e: RefundIssued, needs: Needs) -> None:
    needs.orders.add(e.order_id)
    needs.refunds.add(e.refund_id)


# --- finance commands: settlement runs and payouts -----------------------------------


def _settlement(e: SettlementRun, arrival: int, state: WorkingState) -> Outcome:
    if state.run_seen(e.run_id):
        return Rejected(Reason.DUPLICATE_RUN_ID, f"settlement run {e.run_id!r} already ran")
    if e.as_of > e.occurred_at:  # SPEC §3: only time that has passed releases commission
        return Rejected(
            Reason.AS_OF_IN_FUTURE,
            f"as_of {e.as_of} is later than the run's own occurred_at {e.occurred_at}",
        )
    # SPEC §3 "Bounds": the run moves money only if no account leaves ±2^62, checked on
    # its sums per account before anything changes. A first pass over the due orders
    # sums them (memory per account, not per order); the second settles them page by
    # page, each page handed on as it is decided (``settle_page``).
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for page in state.due_pages(e.as_of):
        for order in page:
            for posting in _settlement_postings(order):
                sums[(posting.account, posting.currency)] += posting.amount
    beyond = state.beyond_bound_by(sums)
    if beyond is not None:
        return _out_of_range(*beyond)
    del sums
    state.add_run(e.run_id, e.as_of)
    kept: list[JournalEntry] = []
    ordinal = 0
    for page in state.due_pages(e.as_of):
        entries: list[JournalEntry] = []
        for order in page:
            postings = _settlement_postings(order)
            if postings:
                entries.append(
                    JournalEntry(
                        event_id=e.event_id,
                        ordinal=ordinal,
                        kind="settlement",
                        rule=RULE_SETTLEMENT,
                        occurred_at=e.occurred_at,
                        postings=postings,
                        plan_id=order.plan_id,
                        order_id=order.order_id,
                    )
                )
                ordinal += 1
        settled = [replace(order, settled_by=e.run_id) for order in page]
        kept += state.settle_page(entries, settled)
    return Applied(tuple(kept))


def _settlement_postings(order: Order) -> tuple[Posting, ...]:
    """What settling ``order`` posts: each level's commission from pending to available."""
    postings: list[Posting] = []
    for sharer, amount in zip(order.levels, order.posted.levels, strict=True):
        if amount:
            postings.append(Posting(sharer_account(sharer, "pending"), order.currency, -amount))
            postings.append(Posting(sharer_account(sharer, "available"), order.currency, amount))
    return tuple(postings)


def _settlement_needs(e: SettlementRun, needs: Needs) -> None:
    needs.runs.add(e.run_id)


def _payout_requested(e: PayoutRequested, arrival: int, state: WorkingState) -> Outcome:
    if state.payout(e.payout_id) is not None:
        return Rejected(Reason.DUPLICATE_PAYOUT_ID, f"payout {e.payout_id!r} was already requested")
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
        return Rejected(*bad, creates=(payout_ref(e.payout_id),))
    state.add_payout(Payout(e.payout_id, e.sharer_id, e.currency, e.amount, PAYOUT_INFLIGHT))
    state.post((entry,))
    return Applied((entry,), creates=(payout_ref(e.payout_id),))


def _payout_requested_needs(e: PayoutRequested, needs: Needs) -> None:
    needs.payouts.add(e.payout_id)
    needs.refs.add(payout_ref(e.payout_id))
    needs.balances.add((sharer_account(e.sharer_id, "available"), e.currency))


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
    return (payout_ref(event.payout_id),)


def _payout_problem(e: PayoutRequested, state: WorkingState) -> tuple[Reason, str] | None:
    if e.amount <= 0:
        return (Reason.INVALID_AMOUNT, f"payout amount must be > 0, got {e.amount}")
    plan = state.plans.in_force(e.occurred_at)
    if plan is None:
        return (Reason.NO_PLAN_IN_FORCE, "no plan is in force at the request's time")
    minimum = plan.min_payout(e.currency)
    if minimum is None:
        return (
            Reason.UNKNOWN_CURRENCY,
            f"plan {plan.plan_id!r} lists no payout minimum for {e.currency}",
        )
    if e.amount < minimum:
        return (
            Reason.BELOW_MINIMUM,
            f"{e.amount} is under the minimum payout of {minimum} {e.currency}",
        )
    available = state.available(e.sharer_id, e.currency)
    if e.amount > available:
        return (
            Reason.INSUFFICIENT_AVAILABLE,
            f"{e.amount} {e.currency} exceeds the available balance of {available}",
        )
    return None


def _payout_ended(e: PayoutSettled | PayoutFailed, arrival: int, state: WorkingState) -> Outcome:
    payout = state.payout(e.payout_id)
    if payout is None:
        return Parked(payout_ref(e.payout_id))
    if payout.state != PAYOUT_INFLIGHT:
        return Rejected(Reason.PAYOUT_NOT_INFLIGHT, f"payout {e.payout_id!r} is {payout.state}")
    for name, given, expected in (
        ("sharer_id", e.sharer_id, payout.sharer_id),
        ("amount", e.amount, payout.amount),
        ("currency", e.currency, payout.currency),
    ):
        if given is not None and given != expected:
            return Rejected(
                Reason.PAYOUT_MISMATCH,
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
    state.update_payout(replace(payout, state=PAYOUT_PAID if settled else PAYOUT_FAILED))
    state.post((entry,))
    return Applied((entry,))


def _payout_ended_needs(e: PayoutSettled | PayoutFailed, needs: Needs) -> None:
    needs.payouts.add(e.payout_id)


def _payout_entry(
    e: Event,
    rule: str,
    kind: EntryKind,
    sharer: str,
    currency: str,
    amount: int,
    src: Bucket,
    dst: Bucket,
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


@dataclass(frozen=True, slots=True)
class EventRules:
    """What an event of one type does to the state, and what it reads from it (loaded in
    bulk for a whole batch before it runs: ``ledger.domain.prefetch``). Each takes the
    event type it is registered for; not a generic class, so that mypyc can compile it
    (ledger/compiled.py)."""

    apply: Callable[[Any, int, WorkingState], Outcome]
    needs: Callable[[Any, Needs], None]


def rules_for(
    event_type: type[E],
    apply: Callable[[E, int, WorkingState], Outcome],
    needs: Callable[[E, Needs], None],
) -> tuple[type[Event], EventRules]:
    """One ``RULES`` entry: the handlers must take ``event_type`` (a type error if not),
    which ``EventRules``' own fields cannot say."""
    return event_type, EventRules(apply, needs)


# One entry per event type (tests/unit/test_registries.py checks that none is missing).
RULES: dict[type[Event], EventRules] = dict(
    [
        rules_for(SharerEnrolled, _enrolled, _enrolled_needs),
        rules_for(PlanPublished, _plan, _plan_needs),
        rules_for(ClickRecorded, _click, _click_needs),
        rules_for(OrderPlaced, _order, _order_needs),
        rules_for(OrderCompleted, _completed, _completed_needs),
        rules_for(RefundIssued, _refund, _refund_needs),
        rules_for(SettlementRun, _settlement, _settlement_needs),
        rules_for(PayoutRequested, _payout_requested, _payout_requested_needs),
        rules_for(PayoutSettled, _payout_ended, _payout_ended_needs),
        rules_for(PayoutFailed, _payout_ended, _payout_ended_needs),
    ]
)
