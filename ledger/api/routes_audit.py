"""Auditor endpoints: verify the hash chains, check the views, read journal entries by
event, order or sharer with their provenance (plan, rule, level)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import Connection, select

from ledger.api import paging
from ledger.api.deps import ERRORS, Conn, allow, store_of
from ledger.api.models import CheckReport, EntryPage, IdQuery, Verification
from ledger.domain.entries import sharer_accounts, split_sharer_account
from ledger.store import tables as t
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
    e, p = t.entries, t.postings
    query = select(e).order_by(e.c.seq).limit(limit)
    if event_id is not None:
        query = query.where(e.c.event_id == event_id)
    elif order_id is not None:
        query = query.where(e.c.order_id == order_id)
    elif sharer_id is not None:
        accounts = sharer_accounts(sharer_id)
        query = query.where(e.c.seq.in_(select(p.c.entry_seq).where(p.c.account.in_(accounts))))
    if after is not None:
        query = query.where(e.c.seq > after[0])
    rows = [dict(r._mapping) for r in conn.execute(query)]
    _attach_postings(conn, rows)
    return {"items": rows, "next_cursor": paging.next_cursor(rows, limit, lambda r: (r["seq"],))}


def _attach_postings(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Each entry's postings, each sharer posting with the order level it pays."""
    if not rows:
        return
    p, o = t.postings, t.orders
    by_entry: dict[int, list[dict[str, Any]]] = {r["seq"]: [] for r in rows}
    for leg in conn.execute(
        select(p.c.entry_seq, p.c.account, p.c.currency, p.c.amount)
        .where(p.c.entry_seq.in_(list(by_entry)))
        .order_by(p.c.entry_seq, p.c.ordinal)
    ):
        by_entry[leg.entry_seq].append(
            {"account": leg.account, "currency": leg.currency, "amount": leg.amount, "level": None}
        )
    order_ids = {r["order_id"] for r in rows if r["order_id"] is not None}
    levels = {
        oid: json.loads(lv)
        for oid, lv in conn.execute(
            select(o.c.order_id, o.c.levels).where(o.c.order_id.in_(order_ids))
        )
    }
    for row in rows:
        order_levels = levels.get(row["order_id"], [])
        for posting in by_entry[row["seq"]]:
            parsed = split_sharer_account(posting["account"])
            if parsed is not None and parsed[0] in order_levels:
                posting["level"] = order_levels.index(parsed[0]) + 1
        row["postings"] = by_entry[row["seq"]]
        row.pop("prev_hash", None)
