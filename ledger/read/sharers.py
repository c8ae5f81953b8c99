"""A sharer's earnings by level, by downline and by month, the referral team below them,
and whether the ledger knows the sharer at all."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, exists, func, or_, select

from ledger.domain.entries import sharer_account
from ledger.domain.plans import DAY_MS
from ledger.read.balances import balances
from ledger.read.models import (
    DownlineEarning,
    Earnings,
    LevelEarning,
    MonthEarning,
    SharerView,
    Team,
    TeamLevel,
)
from ledger.read.totals import day_label
from ledger.store import tables as t
from ledger.store import view_tables as v
from projectors.catalog import shown


def earnings(conn: Connection, sharer_id: str) -> Earnings:
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
    return Earnings(
        by_level=tuple(LevelEarning(c, lv, int(a), n) for c, lv, a, n in by_level),
        by_downline=tuple(
            DownlineEarning(c, lv, int(a), n, downline_id=d) for c, d, lv, a, n in by_downline
        ),
    )


def team(conn: Connection, sharer_id: str, *, members: int = 50) -> Team:
    """The referral tree below a sharer: size per level 1..3 and up to ``members`` ids per
    level (the whole tree below level 3 earns this sharer nothing)."""
    s = t.sharers
    sizes: list[int] = []
    listed: list[tuple[str, ...]] = []
    frontier = select(s.c.sharer_id).where(s.c.upline_id == sharer_id).subquery()
    for _ in range(3):
        sizes.append(int(conn.execute(select(func.count()).select_from(frontier)).scalar() or 0))
        listed.append(
            tuple(
                conn.execute(
                    select(frontier.c.sharer_id).order_by(frontier.c.sharer_id).limit(members)
                ).scalars()
            )
        )
        frontier = (
            select(s.c.sharer_id).where(s.c.upline_id.in_(select(frontier.c.sharer_id))).subquery()
        )
    enrolled = conn.execute(
        select(s.c.upline_id, s.c.enrolled_at).where(s.c.sharer_id == sharer_id)
    ).first()
    return Team(
        sharer_id=sharer_id,
        enrolled=enrolled is not None,
        upline_id=enrolled.upline_id if enrolled else None,
        levels=tuple(
            TeamLevel(n, size, ids)
            for n, (size, ids) in enumerate(zip(sizes, listed, strict=True), 1)
        ),
    )


# an accrual or its reversal moves a sharer's pending (or, once settled, available) bucket
EARNING_KINDS = ("accrual", "reversal")


def earnings_by_month(conn: Connection, sharer_id: str) -> tuple[MonthEarning, ...]:
    """A sharer's earnings (accruals less reversals) per UTC month of the entry's event
    time and currency, from the journal, oldest first: summed over months they equal
    ``earnings``' total per currency."""
    e, p = t.entries, t.postings
    at = p.c.occurred_at
    day = (at - ((at % DAY_MS) + DAY_MS) % DAY_MS) // DAY_MS  # floor, as the views' SQL
    accounts = [sharer_account(sharer_id, b) for b in ("pending", "available")]
    if conn.dialect.name == "sqlite":  # its SUM overflows int64 on the way: sum halves
        parts = [func.sum(p.c.amount.op(">>")(32)), func.sum(p.c.amount.op("&")(0xFFFFFFFF))]
    else:
        parts = [func.sum(p.c.amount)]
    rows = conn.execute(
        select(day.label("day"), p.c.currency, *parts)
        .join(e, e.c.seq == p.c.entry_seq)
        .where(p.c.account.in_(accounts), e.c.kind.in_(EARNING_KINDS))
        .group_by(day, p.c.currency)
    )
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for d, currency, *amount in rows:
        total = int(amount[0]) if len(amount) == 1 else (int(amount[0]) << 32) + int(amount[1])
        sums[(day_label(int(d))[:7], currency)] += total
    return tuple(MonthEarning(m, c, amount) for (m, c), amount in sorted(sums.items()))


def known(conn: Connection, sharer_id: str) -> bool:
    """Whether the ledger has heard of this sharer: enrolled, or earning on an order (a
    sale attributed to a sharer whose enrollment has not arrived yet), or holding money."""
    ol, b = v.view_order_levels, v.view_balances
    return bool(
        conn.execute(
            select(
                or_(
                    exists().where(t.sharers.c.sharer_id == sharer_id),
                    exists().where(shown(ol), ol.c.sharer_id == sharer_id),
                    exists().where(shown(b), b.c.sharer_id == sharer_id),
                )
            )
        ).scalar()
    )


def view(conn: Connection, sharer_id: str) -> SharerView:
    """A sharer's balances, team, earnings by level and downline, and earnings per month."""
    return SharerView(
        sharer_id=sharer_id,
        balances=balances(conn, sharer_id=sharer_id, limit=1000).items,
        team=team(conn, sharer_id),
        earnings=earnings(conn, sharer_id),
        earnings_by_month=earnings_by_month(conn, sharer_id),
    )
