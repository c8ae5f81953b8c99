"""The dashboard's download links: the same files as /api/v1/downloads (CSV or XLSX,
streamed, no formulas), for a signed-in finance or auditor session (the cookie, not a
bearer token). Each page links the table it shows."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger.api.routes_downloads import Format, stream
from ledger.read import downloads
from ledger.web.session import login_redirect as _login_redirect
from ledger.web.session import role_of as _role

router = APIRouter(prefix="/dashboard/downloads", include_in_schema=False)


@router.get("/balances.{fmt}")
def balances(request: Request, fmt: Format) -> Response:
    if _role(request) is None:
        return _login_redirect()
    return stream(request.app.state.store, "balances", fmt, downloads.balances)


@router.get("/payouts-by-level.{fmt}")
def payouts_by_level(request: Request, fmt: Format) -> Response:
    if _role(request) is None:
        return _login_redirect()
    return stream(request.app.state.store, "payouts-by-level", fmt, downloads.payouts_by_level)


@router.get("/totals.{fmt}")
def totals(request: Request, fmt: Format, period: Literal["day", "month"] = "day") -> Response:
    if _role(request) is None:
        return _login_redirect()
    return stream(
        request.app.state.store,
        f"totals-{period}",
        fmt,
        lambda conn: downloads.totals(conn, period=period),
    )


@router.get("/dead-letters.{fmt}")
def dead_letters(request: Request, fmt: Format) -> Response:
    if _role(request) is None:
        return _login_redirect()
    return stream(request.app.state.store, "dead-letters", fmt, downloads.dead_letters)
