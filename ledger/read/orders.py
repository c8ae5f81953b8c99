"""Orders as finance reads them: one order's levels with their states (the multi-level
payout view), the levels a sharer earns on, and what the search box names."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, tuple_

from ledger.domain.entries import SHARER_ACCOUNTS_LIKE
from ledger.read.models import Level, LevelState, OrderPayouts, Page, Payout, SharerLevel, page
from ledger.store import tables as t
from ledger.store import view_tables as v
from projectors.catalog import shown


def order_payouts(conn: Connection, order_id: str) -> OrderPayouts | None:
    """One order's payout view: the order and, per level, sharer, amount and state."""
    o = t.orders
    order = conn.execute(select(o).where(o.c.order_id == order_id)).mappings().first()
    if order is None:
        return None
    ol = v.view_order_levels
    sharers = json.loads(order["levels"])  # look-ups by the view's key (sharer, order)
    rows = conn.execute(
        select(ol)
        .where(shown(ol), ol.c.sharer_id.in_(sharers), ol.c.order_id == order_id)
        .order_by(ol.c.level)
    ).all()
    return OrderPayouts(
        order_id=order_id,
        buyer_id=order["buyer_id"],
        merchant_id=order["merchant_id"],
        currency=order["currency"],
        occurred_at=order["occurred_at"],
        completed_at=order["completed_at"],
        settled_by=order["settled_by"],
        plan_id=order["plan_id"],
        no_commission_reason=order["no_commission_reason"],
        levels=tuple(Level(**_level(conn, r)) for r in rows),
    )


def _level(conn: Connection, row: Any) -> dict[str, Any]:
    return {
        "level": row.level,
        "sharer_id": row.sharer_id,
        "amount": int(row.accrued) - int(row.reversed),
        "accrued": int(row.accrued),
        "reversed": int(row.reversed),
        "settled_at": row.settled_at,
        "state": level_state(conn, row),
    }


def level_state(conn: Connection, row: Any) -> LevelState:
    """pending | available | paid | reversed. Payouts are per sharer, not per order, so
    ``paid`` is decided first settled, first paid: a settled level is paid once the sharer's
    paid total covers it and every level of theirs settled before it."""
    if row.accrued > 0 and row.accrued == row.reversed:
        return "reversed"
    if row.settled_at is None:
        return "pending"
    b = v.view_balances
    paid = (
        conn.execute(
            select(b.c.paid).where(
                shown(b), b.c.sharer_id == row.sharer_id, b.c.currency == row.currency
            )
        ).scalar()
        or 0
    )
    if paid < row.settled:
        return "available"
    before = settled_before(conn, row)
    return "paid" if before + int(row.settled) <= int(paid) else "available"


def settled_before(conn: Connection, row: Any) -> int:
    """Σ settled of the sharer's levels (same currency) settled before the level ``row``
    of view_order_levels: its place in the first-settled-first-paid order."""
    ol = v.view_order_levels
    key = tuple_(ol.c.settled_at, ol.c.settle_chain, ol.c.settle_chain_seq, ol.c.order_id)
    before = conn.execute(
        select(func.coalesce(func.sum(ol.c.settled), 0)).where(
            shown(ol),
            ol.c.sharer_id == row.sharer_id,
            ol.c.currency == row.currency,
            ol.c.settled_at.is_not(None),
            or_(
                ol.c.settled_at < row.settled_at,
                and_(
                    ol.c.settled_at == row.settled_at,
                    key
                    < tuple_(row.settled_at, row.settle_chain, row.settle_chain_seq, row.order_id),
                ),
            ),
        )
    ).scalar()
    return int(before or 0)


def sharer_orders(
    conn: Connection, sharer_id: str, *, after: tuple[str] | None = None, limit: int = 100
) -> Page[SharerLevel]:
    """The order levels a sharer earns on, by order id (keyset by order id)."""
    ol = v.view_order_levels
    query = (
        select(ol)
        .where(shown(ol), ol.c.sharer_id == sharer_id)
        .order_by(ol.c.order_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(ol.c.order_id > after[0])
    rows = [
        SharerLevel(
            **_level(conn, r), order_id=r.order_id, downline_id=r.downline_id, currency=r.currency
        )
        for r in conn.execute(query)
    ]
    return page(rows, limit, lambda r: (r.order_id,))


def what_id(conn: Connection, text: str) -> tuple[str, str]:
    """What the search box names: ("orders", id) or ("sharers", id); an order, else a
    sharer, as typed, else as typed without the spaces around it (an id may hold spaces,
    so the exact text is tried first). Unknown: a sharer, as typed."""
    candidates = [c for c in dict.fromkeys((text, text.strip())) if c]
    for kind, column in (("orders", t.orders.c.order_id), ("sharers", t.sharers.c.sharer_id)):
        for candidate in candidates:
            if conn.execute(select(column).where(column == candidate).limit(1)).first():
                return kind, candidate
    return "sharers", candidates[-1] if candidates else text


def payout(conn: Connection, payout_id: str) -> Payout | None:
    p = t.payouts
    row = conn.execute(select(p).where(p.c.payout_id == payout_id)).first()
    return None if row is None else Payout(**row._mapping)


def first_order_paying_levels(conn: Connection, levels: int) -> str | None:
    """The first order whose accrual paid ``levels`` sharers (the demo shows one)."""
    e, p = t.entries, t.postings
    found = conn.execute(
        select(e.c.order_id)
        .join(p, p.c.entry_seq == e.c.seq)
        .where(e.c.kind == "accrual", p.c.account.like(SHARER_ACCOUNTS_LIKE))
        .group_by(e.c.seq, e.c.order_id)
        .having(func.count() == levels)
        .order_by(e.c.seq)
        .limit(1)
    ).scalar()
    return None if found is None else str(found)


def order_postings(conn: Connection, order_id: str) -> list[tuple[str, str, int]]:
    """(entry kind, account, amount) of every posting of an order, in journal order."""
    e, p = t.entries, t.postings
    rows = conn.execute(
        select(e.c.kind, p.c.account, p.c.amount)
        .join(p, p.c.entry_seq == e.c.seq)
        .where(e.c.order_id == order_id)
        .order_by(e.c.seq, p.c.ordinal)
    )
    return [(kind, account, int(amount)) for kind, account, amount in rows]
