"""Downloads for finance and auditors: CSV and XLSX of balances, payouts by level, totals
and dead letters, with the filters of the matching JSON endpoints.

Streamed: the rows are read a keyset page at a time inside one read snapshot and written
as they come (ledger/read/downloads.py, ledger/spreadsheets.py), so the size of a table
never becomes the size of the server's memory. No text cell becomes a spreadsheet formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection

from ledger import spreadsheets
from ledger.api.deps import ERRORS, allow
from ledger.api.models import ID_PATTERN, IdQuery
from ledger.api.routes_read import CurrencyQuery, TimeQuery
from ledger.read import downloads
from ledger.store.store import Store

Format = Literal["csv", "xlsx"]
FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the table as CSV or XLSX (an attachment)",
        "content": {spreadsheets.CSV_TYPE: {}, spreadsheets.XLSX_TYPE: {}},
    }
}

router = APIRouter(
    prefix="/api/v1/downloads",
    tags=["finance"],
    responses={**ERRORS, **FILE},
    dependencies=[Depends(allow("finance", "auditor"))],
)


def stream(
    store: Store, name: str, fmt: Format, table_of: Callable[[Connection], downloads.Table]
) -> StreamingResponse:
    """The table as a file, written while it is read: one read snapshot for the whole
    file, held while the response streams (and closed with it)."""

    def body() -> Iterator[bytes]:
        with store.read() as conn:
            table = table_of(conn)
            if fmt == "csv":
                yield from spreadsheets.write_csv(table.columns, table.rows)
            else:
                yield from spreadsheets.write_xlsx(table.title, table.columns, table.rows)

    media = spreadsheets.CSV_TYPE if fmt == "csv" else spreadsheets.XLSX_TYPE
    return StreamingResponse(
        body(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(_store)]


@router.get("/balances.{fmt}", response_class=StreamingResponse)
def balances(
    store: StoreDep,
    fmt: Format,
    sharer_id: IdQuery = None,
    currency: CurrencyQuery = None,
    as_of: TimeQuery = None,
) -> StreamingResponse:
    """Balances per sharer and currency (as GET /api/v1/balances, every page)."""
    return stream(
        store,
        "balances",
        fmt,
        lambda conn: downloads.balances(conn, sharer_id=sharer_id, currency=currency, as_of=as_of),
    )


@router.get("/payouts-by-level.{fmt}", response_class=StreamingResponse)
def payouts_by_level(
    store: StoreDep, fmt: Format, sharer_id: IdQuery = None, currency: CurrencyQuery = None
) -> StreamingResponse:
    """Every order level with its sharer, amounts and state (the multi-level payout view
    of every order, by sharer then order id)."""
    return stream(
        store,
        "payouts-by-level",
        fmt,
        lambda conn: downloads.payouts_by_level(conn, sharer_id=sharer_id, currency=currency),
    )


@router.get("/totals.{fmt}", response_class=StreamingResponse)
def totals(
    store: StoreDep,
    fmt: Format,
    period: Literal["day", "month"] = "day",
    currency: CurrencyQuery = None,
    start: TimeQuery = None,
    end: TimeQuery = None,
) -> StreamingResponse:
    """Platform fee and merchant charge totals per period (as GET /api/v1/totals)."""
    return stream(
        store,
        f"totals-{period}",
        fmt,
        lambda conn: downloads.totals(conn, period=period, currency=currency, start=start, end=end),
    )


@router.get("/dead-letters.{fmt}", response_class=StreamingResponse)
def dead_letters(
    store: StoreDep,
    fmt: Format,
    reason: Annotated[str | None, Query(max_length=80, pattern=ID_PATTERN)] = None,
) -> StreamingResponse:
    """Events that could not be applied, with reason, message and payload, oldest first."""
    return stream(
        store, "dead-letters", fmt, lambda conn: downloads.dead_letters(conn, reason=reason)
    )
