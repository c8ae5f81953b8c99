"""The whole story of one order, as finance and auditors ask it: where did its money go?

Its lines and refunds; the split between merchant charge, platform fee and commission
pool; each level's share with the plan, the rule and the sharer; every journal entry with
its postings and hash; the settlement run that released it; the payouts that paid it.

Payouts are per sharer, not per order, so "the payouts that paid it" follows the rule of
the level's ``paid`` state (``orders.level_state``): a sharer's settled levels are paid
first settled, first paid. The sharer's paid payouts, in journal order, fill that queue;
the ones whose stretch of it overlaps this level's stretch paid this level.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, select

from ledger.domain.entries import PLATFORM_FEES, merchant_account, sharer_account
from ledger.domain.events import RefundIssued
from ledger.domain.money import BPS
from ledger.payload import load_event
from ledger.read import audit
from ledger.read.models import (
    CoveringPayout,
    Entry,
    OrderMoney,
    OrderStory,
    RefundedLine,
    StoryLine,
    StoryPlan,
    StoryRefund,
    StorySettlement,
    StoryShare,
)
from ledger.read.orders import level_state, settled_before
from ledger.store import tables as t
from ledger.store import view_tables as v
from projectors.catalog import shown

PAYOUTS_RULE = (
    "Payouts are per sharer, not per order: a sharer's paid payouts, in journal order, pay "
    "that sharer's settled levels first settled, first paid. paid_by lists the payouts whose "
    "share of that queue falls on this level, and how much of each (covered)."
)
PAYOUT_PAGE = 500  # paid postings read at once while walking a sharer's queue


def order_story(conn: Connection, order_id: str) -> OrderStory | None:
    """The story of ``order_id``, or None when there is no such order."""
    o = t.orders
    order = conn.execute(select(o).where(o.c.order_id == order_id)).mappings().first()
    if order is None:
        return None
    plan = _plan(conn, order["plan_id"])
    lines = tuple(
        StoryLine(line_id, amount, rate, refunded, amount - refunded)
        for line_id, amount, rate, refunded in json.loads(order["lines"])
    )
    entries = _entries(conn, order_id)
    merchant = merchant_account(order["merchant_id"])
    refunds = _refunds(conn, order_id, entries, merchant)
    accrual = next((e for e in entries if e.kind == "accrual"), None)
    ol = v.view_order_levels
    rows = conn.execute(
        select(ol)
        .where(
            shown(ol), ol.c.sharer_id.in_(json.loads(order["levels"])), ol.c.order_id == order_id
        )
        .order_by(ol.c.level)
    ).all()
    shares = tuple(_share(conn, row, plan, accrual) for row in rows)
    posted = json.loads(order["posted"])
    pool = sum(line.remaining * line.rate_bps for line in lines)  # × 10⁴
    charge = posted["fee"] + sum(posted["levels"])
    return OrderStory(
        order_id=order_id,
        buyer_id=order["buyer_id"],
        merchant_id=order["merchant_id"],
        currency=order["currency"],
        occurred_at=order["occurred_at"],
        completed_at=order["completed_at"],
        no_commission_reason=order["no_commission_reason"],
        plan=plan,
        lines=lines,
        refunds=refunds,
        money=OrderMoney(
            currency=order["currency"],
            lines_amount=sum(line.remaining for line in lines),
            commission_pool=decimal(Fraction(pool, BPS)),
            merchant_charge=charge,
            platform_fee=posted["fee"],
            commission=sum(posted["levels"]),
            merchant_keeps=decimal(Fraction(pool, BPS) - charge),
            charged_at_placement=-_sum(accrual, merchant) if accrual else 0,
            refunded_to_merchant=sum(r.merchant_charge for r in refunds),
        ),
        shares=shares,
        settlement=_settlement(conn, order["settled_by"], entries),
        entries=entries,
        payouts_rule=PAYOUTS_RULE,
    )


def decimal(value: Fraction) -> str:
    """An exact decimal of a fraction whose denominator divides 10⁴ (a pool): "2320",
    "2319.75", "-0.5"."""
    scaled = value * BPS
    assert scaled.denominator == 1, value
    sign, digits = ("-" if scaled < 0 else ""), abs(int(scaled))
    whole, part = divmod(digits, BPS)
    return f"{sign}{whole}" + (f".{part:04d}".rstrip("0") if part else "")


def _plan(conn: Connection, plan_id: str | None) -> StoryPlan | None:
    if plan_id is None:
        return None
    body = conn.execute(select(t.plans.c.body).where(t.plans.c.plan_id == plan_id)).scalar()
    if body is None:
        return None
    d = json.loads(body)
    return StoryPlan(
        plan_id=d["plan_id"],
        effective_from=d["effective_from"],
        default_rate_bps=d["default_rate_bps"],
        platform_fee_bps=d["platform_fee_bps"],
        level_shares_bps=tuple(d["level_shares_bps"]),
        frozen_days=d["frozen_days"],
    )


def _entries(conn: Connection, order_id: str) -> tuple[Entry, ...]:
    """Every journal entry of the order, by seq (a handful: accrual, reversals, settlement)."""
    found: list[Entry] = []
    after: tuple[int] | None = None
    while True:
        page = audit.entries(conn, order_id=order_id, after=after, limit=100)
        found += page.items
        if page.after is None:
            return tuple(found)
        after = page.after


def _sum(entry: Entry, account: str) -> int:
    return sum(p.amount for p in entry.postings if p.account == account)


def _refunds(
    conn: Connection, order_id: str, entries: tuple[Entry, ...], merchant: str
) -> tuple[StoryRefund, ...]:
    """The order's refunds: every id from the refunds table, the details of those that
    moved money from their event (through their reversal entry)."""
    r, ev = t.refunds, t.events
    ids = conn.execute(select(r.c.refund_id).where(r.c.order_id == order_id)).scalars().all()
    reversals = {e.event_id: e for e in entries if e.kind == "reversal"}
    found: dict[str, StoryRefund] = {}
    if reversals:
        payloads = conn.execute(
            select(ev.c.event_id, ev.c.payload).where(ev.c.event_id.in_(list(reversals)))
        )
        for event_id, payload in payloads:
            event = load_event(payload)
            if not isinstance(event, RefundIssued):
                continue
            entry = reversals[event_id]
            found[event.refund_id] = StoryRefund(
                refund_id=event.refund_id,
                event_id=event_id,
                occurred_at=event.occurred_at,
                lines=tuple(RefundedLine(line.line_id, line.amount) for line in event.lines),
                merchant_charge=_sum(entry, merchant),
                platform_fee=-_sum(entry, PLATFORM_FEES),
            )
    for refund_id in ids:
        found.setdefault(refund_id, StoryRefund(refund_id, None, None, (), 0, 0))
    return tuple(
        sorted(found.values(), key=lambda x: (x.occurred_at is None, x.occurred_at, x.refund_id))
    )


def _share(conn: Connection, row: Any, plan: StoryPlan | None, accrual: Entry | None) -> StoryShare:
    level = int(row.level)
    return StoryShare(
        level=level,
        sharer_id=row.sharer_id,
        plan_id=row.plan_id,
        rule=accrual.rule if accrual is not None else None,
        share_bps=plan.level_shares_bps[level - 1] if plan is not None else None,
        accrued=int(row.accrued),
        reversed=int(row.reversed),
        amount=int(row.accrued) - int(row.reversed),
        settled=int(row.settled),
        settled_at=row.settled_at,
        state=level_state(conn, row),
        paid_by=tuple(_paid_by(conn, row)),
    )


def _paid_by(conn: Connection, row: Any) -> Iterator[CoveringPayout]:
    """The sharer's payouts that paid this level: the level holds the stretch
    [before, before + settled) of the sharer's first-settled-first-paid queue; payout k of
    the sharer's paid payouts (journal order) holds [paid before it, paid up to it)."""
    settled = int(row.settled)
    if row.settled_at is None or settled <= 0:
        return
    start = settled_before(conn, row)
    end = start + settled
    paid_so_far = 0
    for payout_id, amount, occurred_at, seq in _paid_postings(conn, row.sharer_id, row.currency):
        lo, hi = paid_so_far, paid_so_far + amount
        paid_so_far = hi
        covered = min(hi, end) - max(lo, start)
        if covered > 0:
            yield CoveringPayout(payout_id, amount, covered, occurred_at, seq)
        if paid_so_far >= end:
            return


def _paid_postings(
    conn: Connection, sharer_id: str, currency: str
) -> Iterator[tuple[str, int, int, int]]:
    """(payout id, amount, event time, entry seq) of every posting into the sharer's paid
    account in ``currency``, in journal order, read a page at a time (keyset on seq)."""
    e, p = t.entries, t.postings
    account = sharer_account(sharer_id, "paid")
    after = 0
    while True:
        rows = conn.execute(
            select(e.c.payout_id, p.c.amount, e.c.occurred_at, e.c.seq)
            .join(e, e.c.seq == p.c.entry_seq)
            .where(p.c.account == account, p.c.currency == currency, p.c.entry_seq > after)
            .order_by(p.c.entry_seq)
            .limit(PAYOUT_PAGE)
        ).all()
        for payout_id, amount, occurred_at, seq in rows:
            yield str(payout_id), int(amount), int(occurred_at), int(seq)
        if len(rows) < PAYOUT_PAGE:
            return
        after = rows[-1].seq


def _settlement(
    conn: Connection, run_id: str | None, entries: tuple[Entry, ...]
) -> StorySettlement | None:
    if run_id is None:
        return None
    s = t.settlement_runs
    as_of = conn.execute(select(s.c.as_of).where(s.c.run_id == run_id)).scalar()
    entry = next((e for e in entries if e.kind == "settlement"), None)
    return StorySettlement(
        run_id=run_id,
        as_of=int(as_of) if as_of is not None else 0,
        event_id=entry.event_id if entry else None,
        occurred_at=entry.occurred_at if entry else None,
        entry_seq=entry.seq if entry else None,
    )
