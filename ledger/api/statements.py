"""Statement routes, for the sharer's own view and for finance alike: one sharer's UTC
month in one currency as JSON, CSV or PDF (``add_routes``)."""

# no ``from __future__ import annotations``: the routes below are made at run time and
# FastAPI reads their parameters' annotations as objects

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Connection

from ledger.api.deps import Conn
from ledger.api.models import Statement
from ledger.read import audit, statements
from ledger.statement_files import to_csv, to_pdf

Month = Annotated[str, Path(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (UTC)")]
Currency = Annotated[str, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Format = Literal["json", "csv", "pdf"]
FILES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, "application/pdf": {}}, "description": "the file"}
}


def add_routes(router: APIRouter, prefix: str, sharer: Any, whose: str) -> None:
    """GET {prefix}/statements/{month}[.csv|.pdf]; ``sharer`` is the annotated parameter
    that names the sharer (a path id for finance, the token's own sharer for a sharer)."""
    # .csv and .pdf first: {month} alone would match 2026-01.csv
    formats: tuple[tuple[str, Format], ...] = ((".csv", "csv"), (".pdf", "pdf"), ("", "json"))
    for suffix, fmt in formats:
        route = _route(fmt, sharer)
        route.__doc__ = (
            f"{whose} statement (对账单) for a UTC month and currency"
            + {
                "csv": ", as CSV.",
                "pdf": ", as a PDF a finance team would send.",
                "json": (
                    ": opening and closing balance per bucket, every line with its order, "
                    "level, plan, rule and journal entry."
                ),
            }[fmt]
        )
        extra: dict[str, Any] = (
            {"response_model": Statement}
            if fmt == "json"
            else {"response_class": Response, "responses": FILES}
        )
        router.get(f"{prefix}/statements/{{month}}{suffix}", name=f"{whose} {fmt}", **extra)(route)


def _route(fmt: Format, sharer: Any) -> Callable[..., Any]:
    def route(conn: Conn, sharer_id: sharer, month: Month, currency: Currency) -> Any:
        return answer(conn, sharer_id, month, currency, fmt)

    return route


def answer(conn: Connection, sharer_id: str, month: str, currency: str, fmt: Format) -> Any:
    try:
        start, end = statements.month(month)
    except statements.BadPeriod as exc:
        raise HTTPException(400, str(exc)) from exc
    found = statements.statement(conn, sharer_id, currency, start, end)
    if fmt == "json":
        return found
    name = f"statement-{month}-{currency}"
    if fmt == "csv":
        return StreamingResponse(
            to_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        to_pdf(found, ledger_head=audit.head(conn)),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )
