"""Queries answered from the views (and, for the referral tree, from the sharers table).

Every function takes an open Connection (one snapshot per request) and returns plain
dicts/lists ready for JSON. Lists are keyset-paginated: pass the ``after`` key of the last
row of the previous page.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, tuple_

from ledger.domain.entries import sharer_accounts, split_sharer_account
from ledger.domain.plans import DAY_MS
from ledger.store import tables as t
from ledger.store import view_tables as v
from projectors.catalog import shown
from projectors.runner import checkpoints

BALANCE_FIELDS = ("pending", "available", "inflight", "paid", "earned", "reversed")


def _balance_dict(row: Any) -> dict[str, Any]:
    return {
        "sharer_id": row.sharer_id,
        "currency": row.currency,
        **{f: int(getattr(row, f)) for f in BALANCE_FIELDS},
    }


def balances(
    conn: Connection,
    *,
    sharer_id: str | None = None,
    currency: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
    as_of: int | None = None,
) -> list[dict[str, Any]]:
    """Balances per (sharer, currency), ordered by both; as of event time ``as_of`` when
    given (the view minus what was posted after it: cheap for recent times)."""
    b = v.view_balances
    query = select(b).where(shown(b)).order_by(b.c.sharer_id, b.c.currency).limit(limit)
    if sharer_id is not None:
        query = query.where(b.c.sharer_id == sharer_id)
    if currency is not None:
        query = query.where(b.c.currency == currency)
    if after is not None:
        query = query.where(tuple_(b.c.sharer_id, b.c.currency) > tuple_(*after))
    rows = [_balance_dict(r) for r in conn.execute(query)]
    if as_of is None or not rows:
        return rows
    return _rewind(conn, rows, as_of)


def _rewind(conn: Connection, rows: list[dict[str, Any]], as_of: int) -> list[dict[str, Any]]:
    """Subtract what the view holds from entries after ``as_of`` (only entries within the
    balances checkpoints, so the result is exact for what the view has seen). The postings
    after ``as_of`` come by the (account, currency, occurred_at) index: few for recent times."""
    e, p = t.entries, t.postings
    accounts = [account for r in rows for account in sharer_accounts(r["sharer_id"])]
    held = checkpoints(conn, "balances")
    later = [
        (account, currency, kind, amount)
        for account, currency, kind, amount, chain, chain_seq in conn.execute(
            select(p.c.account, p.c.currency, e.c.kind, p.c.amount, e.c.chain, e.c.chain_seq)
            .join(e, e.c.seq == p.c.entry_seq)
            .where(p.c.account.in_(accounts), p.c.occurred_at > as_of)
        )
        if chain_seq <= held.get(chain, 0)
    ]
    index = {(r["sharer_id"], r["currency"]): r for r in rows}
    for account, currency, kind, amount in later:
        parsed = split_sharer_account(account)
        row = index.get((parsed[0], currency)) if parsed else None
        if row is None or parsed is None:
            continue
        row[parsed[1]] -= int(amount)
        if kind == "accrual":
            row["earned"] -= int(amount)
        elif kind == "reversal":
            row["reversed"] += int(amount)
    return [r for r in rows if any(r[f] for f in BALANCE_FIELDS)]


def order_levels(conn: Connection, order_id: str) -> dict[str, Any] | None:
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
    return {
        "order_id": order_id,
        "buyer_id": order["buyer_id"],
        "merchant_id": order["merchant_id"],
        "currency": order["currency"],
        "occurred_at": order["occurred_at"],
        "completed_at": order["completed_at"],
        "settled_by": order["settled_by"],
        "plan_id": order["plan_id"],
        "no_commission_reason": order["no_commission_reason"],
        "levels": [_level(conn, r) for r in rows],
    }


def _level(conn: Connection, row: Any) -> dict[str, Any]:
    amount = int(row.accrued) - int(row.reversed)
    return {
        "level": row.level,
        "sharer_id": row.sharer_id,
        "amount": amount,
        "accrued": int(row.accrued),
        "reversed": int(row.reversed),
        "settled_at": row.settled_at,
        "state": level_state(conn, row),
    }


def level_state(conn: Connection, row: Any) -> str:
    """pending | available | paid | reversed. Payouts are per sharer, not per order, so
    ``paid`` is decided first settled, first paid: a settled level is paid once the sharer's
    paid total covers it and every level of theirs settled before it."""
    if row.accrued > 0 and row.accrued == row.reversed:
        return "reversed"
    if row.settled_at is None:
        return "pending"
    b, ol = v.view_balances, v.view_order_levels
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
    return "paid" if int(before or 0) + int(row.settled) <= int(paid) else "available"


def sharer_levels(
    conn: Connection, sharer_id: str, *, after: tuple[str] | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The order levels a sharer earns on, newest order id last (keyset by order id)."""
    ol = v.view_order_levels
    query = (
        select(ol)
        .where(shown(ol), ol.c.sharer_id == sharer_id)
        .order_by(ol.c.order_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(ol.c.order_id > after[0])
    return [
        {
            "order_id": r.order_id,
            "downline_id": r.downline_id,
            **_level(conn, r),
            "currency": r.currency,
        }
        for r in conn.execute(query)
    ]


def earnings(conn: Connection, sharer_id: str) -> dict[str, list[dict[str, Any]]]:
    """A sharer's earnings (accrued − reversed) by level and by the downline sharer whose
    sale produced them, per currency."""
    ol = v.view_order_levels
    net = func.sum(ol.c.accrued - ol.c.reversed)
    by_level = conn.execute(
        select(ol.c.currency, ol.c.level, net, func.count())
        .where(shown(ol), ol.c.sharer_id == sharer_id)
        .group_by(ol.c.currency, ol.c.level)
        .order_by(ol.c.currency, ol.c.level)
    )
    by_downline = conn.execute(
        select(ol.c.currency, ol.c.downline_id, ol.c.level, net, func.count())
        .where(shown(ol), ol.c.sharer_id == sharer_id)
        .group_by(ol.c.currency, ol.c.downline_id, ol.c.level)
        .order_by(ol.c.currency, ol.c.level, ol.c.downline_id)
    )
    return {
        "by_level": [
            {"currency": c, "level": lv, "amount": int(a), "orders": n} for c, lv, a, n in by_level
        ],
        "by_downline": [
            {"currency": c, "downline_id": d, "level": lv, "amount": int(a), "orders": n}
            for c, d, lv, a, n in by_downline
        ],
    }


def team(conn: Connection, sharer_id: str, *, members: int = 50) -> dict[str, Any]:
    """The referral tree below a sharer: size per level 1..3 and up to ``members`` ids per
    level (the whole tree below level 3 earns this sharer nothing)."""
    s = t.sharers
    sizes: list[int] = []
    listed: list[list[str]] = []
    frontier = select(s.c.sharer_id).where(s.c.upline_id == sharer_id).subquery()
    for _ in range(3):
        sizes.append(int(conn.execute(select(func.count()).select_from(frontier)).scalar() or 0))
        listed.append(
            [
                r
                for (r,) in conn.execute(
                    select(frontier.c.sharer_id).order_by(frontier.c.sharer_id).limit(members)
                )
            ]
        )
        frontier = (
            select(s.c.sharer_id).where(s.c.upline_id.in_(select(frontier.c.sharer_id))).subquery()
        )
    enrolled = conn.execute(
        select(s.c.upline_id, s.c.enrolled_at).where(s.c.sharer_id == sharer_id)
    ).first()
    return {
        "sharer_id": sharer_id,
        "enrolled": enrolled is not None,
        "upline_id": enrolled.upline_id if enrolled else None,
        "levels": [
            {"level": n, "size": size, "members": ids}
            for n, (size, ids) in enumerate(zip(sizes, listed, strict=True), 1)
        ],
    }


def day_label(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC).strftime("%Y-%m-%d")


def totals(
    conn: Connection,
    *,
    period: str = "day",
    currency: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[dict[str, Any]]:
    """Platform fees and merchant charges per period ("day" or "month", UTC) and currency,
    for event times in [start, end) when given, oldest first."""
    f = v.view_fee_totals
    query = select(f).where(shown(f)).order_by(f.c.day, f.c.currency)
    if currency is not None:
        query = query.where(f.c.currency == currency)
    if start is not None:
        query = query.where(f.c.day >= start // DAY_MS)
    if end is not None:
        query = query.where(f.c.day < -(-end // DAY_MS))
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in conn.execute(query):
        label = day_label(row.day)
        key = (label if period == "day" else label[:7], row.currency)
        sums[key][0] += int(row.fees)
        sums[key][1] += int(row.merchant_charges)
    return [
        {"period": p, "currency": c, "fees": fees, "merchant_charges": charges}
        for (p, c), (fees, charges) in sorted(sums.items())
    ]
