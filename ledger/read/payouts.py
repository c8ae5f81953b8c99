"""Payouts as their sharer reads them."""

from __future__ import annotations

from sqlalchemy import Connection, select

from ledger.read.models import Page, Payout, page
from ledger.store import tables as t


def sharer_payouts(
    conn: Connection, sharer_id: str, *, after: tuple[str] | None = None, limit: int = 100
) -> Page[Payout]:
    """A sharer's payouts (requested, in flight, paid, failed, rejected) by payout id."""
    p = t.payouts
    query = select(p).where(p.c.sharer_id == sharer_id).order_by(p.c.payout_id).limit(limit)
    if after is not None:
        query = query.where(p.c.payout_id > after[0])
    rows = [Payout(**r._mapping) for r in conn.execute(query)]
    return page(rows, limit, lambda r: (r.payout_id,))
