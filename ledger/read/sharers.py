"""A sharer's earnings by level and downline, and the referral team below them."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from ledger.read.models import DownlineEarning, Earnings, LevelEarning, Team, TeamLevel
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
