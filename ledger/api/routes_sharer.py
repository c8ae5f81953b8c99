"""A sharer's own view, for the platform's app backend ("my earnings"): what the sharer's
token is bound to, and nothing else. No route takes a sharer id: the token names it
(``deps.own_sharer``), so no id, cursor or path can reach another sharer's data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ledger.api import paging
from ledger.api.deps import ERRORS, Conn, OwnSharer
from ledger.api.models import PayoutPage, Sharer, SharerLevelPage
from ledger.api.statements import add_routes
from ledger.read import orders, payouts, sharers

router = APIRouter(prefix="/api/v1/me", tags=["sharer"], responses=ERRORS)


@router.get("", response_model=Sharer)
def me(conn: Conn, sharer_id: OwnSharer) -> Any:
    """My balances per currency, my team by level and my earnings by level and downline."""
    return sharers.view(conn, sharer_id)


@router.get("/orders", response_model=SharerLevelPage)
def my_orders(
    conn: Conn, sharer_id: OwnSharer, limit: paging.Limit = 100, cursor: paging.Cursor = None
) -> dict[str, Any]:
    """The order levels I earn on, with amount and state, by order id."""
    after = paging.decode(cursor, (str,))
    found = orders.sharer_orders(conn, sharer_id, after=after, limit=limit)
    return {"items": found.items, "next_cursor": paging.encode(found.after)}


@router.get("/payouts", response_model=PayoutPage)
def my_payouts(
    conn: Conn, sharer_id: OwnSharer, limit: paging.Limit = 100, cursor: paging.Cursor = None
) -> dict[str, Any]:
    """My payouts (in flight, paid, failed, rejected) by payout id."""
    after = paging.decode(cursor, (str,))
    found = payouts.sharer_payouts(conn, sharer_id, after=after, limit=limit)
    return {"items": found.items, "next_cursor": paging.encode(found.after)}


add_routes(router, "", OwnSharer, "My")
