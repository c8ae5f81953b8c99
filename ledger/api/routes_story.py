"""The whole story of an order for finance and auditors: ``GET /api/v1/orders/{id}``
(ledger/read/order_story.py says what it holds and how payouts are matched to levels)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from ledger.api.deps import ERRORS, Conn, allow
from ledger.api.models import IdPath, OrderStory
from ledger.read.order_story import order_story

router = APIRouter(
    prefix="/api/v1",
    tags=["finance"],
    responses=ERRORS,
    dependencies=[Depends(allow("finance", "auditor"))],
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such order", "model": ERRORS[400]["model"]}
}


@router.get("/orders/{order_id:id}", response_model=OrderStory, responses=NOT_FOUND)
def order(conn: Conn, order_id: IdPath) -> Any:
    """Where the order's money went: lines, refunds, merchant charge, platform fee and
    commission pool, each level's share (plan, rule, sharer, state) and the payouts that
    paid it, the settlement run that released it, every journal entry with its postings
    and hash."""
    story = order_story(conn, order_id)
    if story is None:
        raise HTTPException(404, f"no order {order_id!r}")
    return story
