"""Read endpoints for finance and auditors: balances, payout views, team, totals, dead
letters, parked events, lag. Answered from the views (which trail the journal by at most
one catch-up interval) in one snapshot per request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from ledger.api import paging
from ledger.api.deps import ERRORS, Conn, allow
from ledger.api.models import (
    ID_PATTERN,
    BalancePage,
    DeadLetterPage,
    IdPath,
    IdQuery,
    Lag,
    OrderPayouts,
    ParkedPage,
    Sharer,
    SharerLevelPage,
    Total,
)
from ledger.api.statements import add_routes
from ledger.read import balances as balance_reads
from ledger.read import operations, orders, sharers
from ledger.read import totals as total_reads
from ledger.read.models import Page
from schemas.times import MAX_TIME_MS, MIN_TIME_MS

router = APIRouter(
    prefix="/api/v1",
    tags=["finance"],
    responses=ERRORS,
    dependencies=[Depends(allow("finance", "auditor"))],
)

CurrencyQuery = Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")]
TimeQuery = Annotated[
    int | None,
    Query(ge=MIN_TIME_MS, le=MAX_TIME_MS, description="event time, ms since the epoch (UTC)"),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "not found", "model": ERRORS[400]["model"]}
}


def _page(found: Page[Any]) -> dict[str, Any]:
    return {"items": found.items, "next_cursor": paging.encode(found.after)}


@router.get("/balances", response_model=BalancePage)
def balances(
    conn: Conn,
    sharer_id: IdQuery = None,
    currency: CurrencyQuery = None,
    as_of: TimeQuery = None,
    limit: paging.Limit = 100,
    cursor: paging.Cursor = None,
) -> dict[str, Any]:
    """Balances per sharer and currency; ``as_of`` gives them as of that event time."""
    after = paging.decode(cursor, (str, str))
    return _page(
        balance_reads.balances(
            conn, sharer_id=sharer_id, currency=currency, as_of=as_of, after=after, limit=limit
        )
    )


@router.get("/orders/{order_id:id}/payouts", response_model=OrderPayouts, responses=NOT_FOUND)
def order_payouts(conn: Conn, order_id: IdPath) -> Any:
    """One order's multi-level payout view: each level's sharer, amount and state."""
    view = orders.order_payouts(conn, order_id)
    if view is None:
        raise HTTPException(404, f"no order {order_id!r}")
    return view


@router.get("/sharers/{sharer_id:id}", response_model=Sharer, responses=NOT_FOUND)
def sharer(conn: Conn, sharer_id: IdPath) -> Any:
    """A sharer's balances, referral team by level, earnings by level, downline and month;
    404 for an id never enrolled that never earned."""
    if not sharers.known(conn, sharer_id):
        raise HTTPException(404, f"no sharer {sharer_id!r}")
    return sharers.view(conn, sharer_id)


@router.get("/sharers/{sharer_id:id}/orders", response_model=SharerLevelPage)
def sharer_orders(
    conn: Conn, sharer_id: IdPath, limit: paging.Limit = 100, cursor: paging.Cursor = None
) -> dict[str, Any]:
    """The order levels a sharer earns on, with amount and state, by order id."""
    after = paging.decode(cursor, (str,))
    return _page(orders.sharer_orders(conn, sharer_id, after=after, limit=limit))


@router.get("/totals", response_model=list[Total])
def totals(
    conn: Conn,
    period: Literal["day", "month"] = "day",
    currency: CurrencyQuery = None,
    start: TimeQuery = None,
    end: TimeQuery = None,
) -> Any:
    """Platform fee and merchant charge totals per UTC day or month and currency."""
    return total_reads.totals(conn, period=period, currency=currency, start=start, end=end)


@router.get("/dead-letters", response_model=DeadLetterPage)
def dead_letters(
    conn: Conn,
    reason: Annotated[str | None, Query(max_length=80, pattern=ID_PATTERN)] = None,
    redriven: Annotated[
        bool | None,
        Query(description="false: the ones left to correct; true: the ones finance redrove"),
    ] = None,
    limit: paging.Limit = 100,
    cursor: paging.Cursor = None,
) -> dict[str, Any]:
    """Events that could not be applied, with their reason codes, oldest first, each with
    its redrive (event id and outcome) if finance resubmitted it corrected."""
    after = paging.decode(cursor, (int,))
    found = operations.dead_letters(
        conn, reason=reason, redriven=redriven, after=after, limit=limit
    )
    return _page(found)


@router.get("/parked", response_model=ParkedPage)
def parked(conn: Conn, limit: paging.Limit = 100, cursor: paging.Cursor = None) -> dict[str, Any]:
    """Events waiting for what they refer to (an order, an upline, a payout request)."""
    after = paging.decode(cursor, (int,))
    return _page(operations.parked(conn, after=after, limit=limit))


@router.get("/lag", response_model=Lag)
def lag(conn: Conn, request: Request) -> Any:
    """Ingestion lag per topic and partition, view lag, dead letters and parked events."""
    return operations.lag(conn, request.app.state.end_offsets)


add_routes(router, "/sharers/{sharer_id:id}", IdPath, "A sharer's")
