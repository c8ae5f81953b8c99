"""Auditor endpoints: verify the hash chains, check the views, read journal entries by
event, order or sharer with their provenance (plan, rule, level)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from ledger.api import paging
from ledger.api.deps import ERRORS, Conn, allow, store_of
from ledger.api.models import CheckReport, EntryPage, IdQuery, Verification
from ledger.read import audit
from ledger.store.verify import verify as verify_store
from projectors.check import check as check_views

router = APIRouter(
    prefix="/api/v1/audit",
    tags=["auditor"],
    responses=ERRORS,
    dependencies=[Depends(allow("auditor"))],
)


@router.get("/verify", response_model=Verification)
def verify(
    store: Annotated[Any, Depends(store_of)],
    expect_head: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
) -> dict[str, Any]:
    """Recompute every hash chain; ``ok`` false names the first bad row."""
    report = verify_store(store, expect_head=expect_head)
    return {
        "ok": report.ok,
        "entries_checked": report.entries_checked,
        "head": report.head,
        "chains": {c: {"chain_seq": s, "hash": h} for c, (s, h) in report.chains.items()},
        "first_bad_seq": report.first_bad_seq,
        "chain": report.chain_of_bad,
        "problem": report.problem,
    }


@router.get("/check", response_model=CheckReport)
def check(store: Annotated[Any, Depends(store_of)]) -> dict[str, Any]:
    """Compare every view with a recomputation from the journal (drift report)."""
    drifts = check_views(store)
    return {
        "ok": not drifts,
        "drifts": [
            {
                "view": d.view,
                "key": list(d.key),
                "column": d.column,
                "stored": d.stored,
                "expected": d.expected,
            }
            for d in drifts[:1000]
        ],
    }


@router.get("/entries", response_model=EntryPage)
def entries(
    conn: Conn,
    event_id: IdQuery = None,
    order_id: IdQuery = None,
    sharer_id: IdQuery = None,
    limit: paging.Limit = 100,
    cursor: paging.Cursor = None,
) -> dict[str, Any]:
    """Journal entries of one event, order or sharer (exactly one filter), by seq."""
    given = [
        name
        for name, value in (
            ("event_id", event_id),
            ("order_id", order_id),
            ("sharer_id", sharer_id),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise HTTPException(400, "give exactly one of event_id, order_id, sharer_id")
    after = paging.decode(cursor, (int,))
    found = audit.entries(
        conn, event_id=event_id, order_id=order_id, sharer_id=sharer_id, after=after, limit=limit
    )
    return {"items": found.items, "next_cursor": paging.encode(found.after)}
