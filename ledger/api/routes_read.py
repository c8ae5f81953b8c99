"""Read endpoints for finance and auditors: balances, payout views, team, totals, dead
letters, parked events, lag. Answered from the views (which trail the journal by at most
one catch-up interval) in one snapshot per request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import func, select

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
from ledger.store import tables as t
from projectors import read, runner
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
    rows = read.balances(
        conn, sharer_id=sharer_id, currency=currency, as_of=as_of, after=after, limit=limit
    )
    return {
        "items": rows,
        "next_cursor": paging.next_cursor(rows, limit, lambda r: (r["sharer_id"], r["currency"])),
    }


@router.get("/orders/{order_id:id}/payouts", response_model=OrderPayouts, responses=NOT_FOUND)
def order_payouts(conn: Conn, order_id: IdPath) -> dict[str, Any]:
    """One order's multi-level payout view: each level's sharer, amount and state."""
    view = read.order_levels(conn, order_id)
    if view is None:
        raise HTTPException(404, f"no order {order_id!r}")
    return view


@router.get("/sharers/{sharer_id:id}", response_model=Sharer)
def sharer(conn: Conn, sharer_id: IdPath) -> dict[str, Any]:
    """A sharer's balances, referral team by level and earnings by level and downline."""
    return {
        "sharer_id": sharer_id,
        "balances": read.balances(conn, sharer_id=sharer_id, limit=1000),
        "team": read.team(conn, sharer_id),
        "earnings": read.earnings(conn, sharer_id),
    }


@router.get("/sharers/{sharer_id:id}/orders", response_model=SharerLevelPage)
def sharer_orders(
    conn: Conn, sharer_id: IdPath, limit: paging.Limit = 100, cursor: paging.Cursor = None
) -> dict[str, Any]:
    """The order levels a sharer earns on, with amount and state, by order id."""
    after = paging.decode(cursor, (str,))
    rows = read.sharer_levels(conn, sharer_id, after=after, limit=limit)
    return {
        "items": rows,
        "next_cursor": paging.next_cursor(rows, limit, lambda r: (r["order_id"],)),
    }


@router.get("/totals", response_model=list[Total])
def totals(
    conn: Conn,
    period: Literal["day", "month"] = "day",
    currency: CurrencyQuery = None,
    start: TimeQuery = None,
    end: TimeQuery = None,
) -> list[dict[str, Any]]:
    """Platform fee and merchant charge totals per UTC day or month and currency."""
    return read.totals(conn, period=period, currency=currency, start=start, end=end)


@router.get("/dead-letters", response_model=DeadLetterPage)
def dead_letters(
    conn: Conn,
    reason: Annotated[str | None, Query(max_length=80, pattern=ID_PATTERN)] = None,
    limit: paging.Limit = 100,
    cursor: paging.Cursor = None,
) -> dict[str, Any]:
    """Events that could not be applied, with their reason codes, oldest first."""
    after = paging.decode(cursor, (int,))
    d = t.dead_letters
    query = select(d).order_by(d.c.id).limit(limit)
    if reason is not None:
        query = query.where(d.c.reason == reason)
    if after is not None:
        query = query.where(d.c.id > after[0])
    rows = [dict(r._mapping) for r in conn.execute(query)]
    return {"items": rows, "next_cursor": paging.next_cursor(rows, limit, lambda r: (r["id"],))}


@router.get("/parked", response_model=ParkedPage)
def parked(conn: Conn, limit: paging.Limit = 100, cursor: paging.Cursor = None) -> dict[str, Any]:
    """Events waiting for what they refer to (an order, an upline, a payout request)."""
    after = paging.decode(cursor, (int,))
    q = t.parked
    query = (
        select(q.c.arrival, q.c.event_id, q.c.type, q.c.waits_for, q.c.source, q.c.parked_at)
        .order_by(q.c.arrival)
        .limit(limit)
    )
    if after is not None:
        query = query.where(q.c.arrival > after[0])
    rows = [dict(r._mapping) for r in conn.execute(query)]
    return {
        "items": rows,
        "next_cursor": paging.next_cursor(rows, limit, lambda r: (r["arrival"],)),
    }


@router.get("/lag", response_model=Lag)
def lag(conn: Conn, request: Request) -> dict[str, Any]:
    """Ingestion lag per topic and partition, view lag, dead letters and parked events."""
    o = t.consumer_offsets
    stored = [
        dict(r._mapping)
        for r in conn.execute(
            select(o.c.group_id, o.c.topic, o.c.partition, o.c.next_offset).order_by(
                o.c.group_id, o.c.topic, o.c.partition
            )
        )
    ]
    ends = request.app.state.end_offsets({(r["topic"], r["partition"]) for r in stored})
    for row in stored:
        end = ends.get((row["topic"], row["partition"]))
        row["end_offset"] = end
        row["lag"] = None if end is None else max(0, end - row["next_offset"])
    heads = runner.heads(conn)
    views = [
        {
            "view": name,
            "entries_behind": sum(
                head - runner.checkpoints(conn, name).get(chain, 0) for chain, head in heads.items()
            ),
        }
        for name in ("balances", "payouts", "totals")
    ]
    d, q = t.dead_letters, t.parked
    reasons: dict[str, int] = {
        reason: int(n)
        for reason, n in conn.execute(select(d.c.reason, func.count()).group_by(d.c.reason))
    }
    refs: dict[str, int] = {}
    for waits_for, n in conn.execute(select(q.c.waits_for, func.count()).group_by(q.c.waits_for)):
        kind = waits_for.split(":", 1)[0]
        refs[kind] = refs.get(kind, 0) + int(n)
    return {
        "partitions": stored,
        "views": views,
        "dead_letters_by_reason": {k: int(n) for k, n in reasons.items()},
        "parked_by_reference": refs,
    }
