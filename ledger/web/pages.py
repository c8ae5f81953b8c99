"""Dashboard pages: balances, a sharer, an order's payout view, fee and merchant totals
(with an SVG chart drawn here, no script), dead letters; sign-in with an API token.

The session is the token itself in an HttpOnly, SameSite=Strict cookie, checked against
the configured hashes on every request (finance and auditor may sign in). Pages are not
part of the OpenAPI document.

Cross-site forms (CSRF, login CSRF too) are refused with 403: a POST must come from this
origin (its Origin, else its Referer, names this host) and carry the form's token: on the
sign-in form a random value also set as a cookie (double submit), on the sign-out form a
value derived from the session. Ids and cursors from the URL are checked like API input
(400 with a message).
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ledger.api import paging
from ledger.domain.validation import MAX_ID, valid_event_id
from ledger.read import balances, money, operations, orders, sharers, totals
from ledger.read.models import MonthEarning, Total
from ledger.read.order_story import order_story
from ledger.web import downloads, redrive
from ledger.web.charts import Chart, Period, bar_chart
from ledger.web.render import (  # noqa: F401 - LOCALE_COOKIE, page_of: part of this module's face
    CSRF_COOKIE,
    DOT_IDS,
    FIELDS,
    HERE,
    LOCALE_COOKIE,
    PAGE,
    _forbidden,
    _form,
    _https,
    _matches,
    _problem,
    _render,
    _same_origin,
    _session_csrf,
    page_of,
    reader_locale,
)
from ledger.web.session import COOKIE, ROLES
from ledger.web.session import login_redirect as _login_redirect
from ledger.web.session import role_of as _role

router = APIRouter(prefix="/dashboard", include_in_schema=False)
static = StaticFiles(directory=HERE / "static")


def mount(app: FastAPI, locale: str = money.DEFAULT_LOCALE) -> FastAPI:
    """Add the dashboard (pages and static assets) to an app from ``ledger.api.app``;
    ``locale`` is how amounts read when the reader's browser asks for none we offer."""
    app.state.locale = money.locale_of(locale)
    app.include_router(router)
    app.include_router(redrive.router)
    app.include_router(downloads.router)
    app.mount("/static", static, name="static")
    return app


def _login_page(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _render(
        "login.html", status=status, title="Sign in", role=None, login_csrf=csrf, error=error
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        path="/dashboard",
        secure=_https(request),
    )
    return response


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    if not _same_origin(request):
        return _forbidden(request)
    form = await _form(request)
    if not _matches(form.get("csrf"), request.cookies.get(CSRF_COOKIE)):
        return _login_page(request, 403, "This sign-in form has expired: sign in again.")
    token = form.get("token", "").strip()
    role = request.app.state.tokens.role_of(token) if token else None
    if role not in ROLES:
        return _login_page(request, 401, "That token is not a finance or auditor token.")
    response = RedirectResponse("/dashboard/", status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", path="/dashboard", secure=_https(request)
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    if not _same_origin(request):
        return _forbidden(request)
    if request.cookies.get(COOKIE):
        form = await _form(request)
        if not _matches(form.get("csrf"), _session_csrf(request)):
            return _forbidden(request)
    response = _login_redirect()
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


def _cursor(request: Request, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The page's cursor; InvalidCursor (400) for anything this server did not issue."""
    return paging.decode(request.query_params.get("cursor"), types)


def _bad_id(request: Request, value: str, role: str) -> HTMLResponse | None:
    """A 400 page for an id no event could carry (the rules' one rule for ids)."""
    if valid_event_id(value):
        return None
    return _problem(
        request,
        400,
        "Bad request",
        f"Not an id: ids are 1 to {MAX_ID} characters without control characters.",
        role,
    )


@router.get("/")
def balances_page(request: Request) -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    try:
        after = _cursor(request, (str, str))
    except paging.InvalidCursor as bad:
        return _problem(request, 400, "Bad request", str(bad.detail), role)
    with request.app.state.store.read() as conn:
        found = balances.balances(conn, after=after, limit=PAGE)
    return _render(
        "balances.html",
        request=request,
        title="Balances",
        role=role,
        nav="balances",
        rows=found.items,
        fields=FIELDS,
        as_of=None,
        next_cursor=paging.encode(found.after),
    )


@router.get("/lookup")
def lookup(request: Request, q: str = "", kind: str = "") -> Response:
    """The header's search box: an order id or a sharer id (``kind`` says which)."""
    role = _role(request)
    if role is None:
        return _login_redirect()
    bad = _bad_id(request, q, role)
    if bad is not None:
        return bad
    if kind not in ("orders", "sharers"):
        with request.app.state.store.read() as conn:
            kind, q = orders.what_id(conn, q)
    if q in DOT_IDS:  # no path a browser keeps: the page is shown here
        return order_page(request, q) if kind == "orders" else sharer_page(request, q)
    return RedirectResponse(page_of(kind, q), status_code=303)


@router.get("/sharers/{sharer_id:id}")
def sharer_page(request: Request, sharer_id: str) -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    bad = _bad_id(request, sharer_id, role)
    if bad is not None:
        return bad
    try:
        after = _cursor(request, (str,))
    except paging.InvalidCursor as wrong:
        return _problem(request, 400, "Bad request", str(wrong.detail), role)
    with request.app.state.store.read() as conn:
        if not sharers.known(conn, sharer_id):
            return _problem(
                request,
                404,
                "Not found",
                f"No sharer {sharer_id!r}: never enrolled, never earned.",
                role,
            )
        found = orders.sharer_orders(conn, sharer_id, after=after, limit=PAGE)
        by_month = sharers.earnings_by_month(conn, sharer_id)
        context: dict[str, Any] = {
            "balances": balances.balances(conn, sharer_id=sharer_id, limit=1000).items,
            "team": sharers.team(conn, sharer_id),
            "earnings": sharers.earnings(conn, sharer_id),
            "by_month": by_month,
            "orders": found.items,
        }
    locale = reader_locale(request)
    return _render(
        "sharer.html",
        request=request,
        title=f"Sharer {sharer_id}",
        role=role,
        nav="balances",
        sharer_id=sharer_id,
        fields=FIELDS,
        charts=month_charts(by_month, locale),
        first_page=after is None,
        next_cursor=paging.encode(found.after),
        **context,
    )


def month_charts(rows: tuple[MonthEarning, ...], locale: str) -> list[tuple[str, Chart]]:
    """One chart per currency of a sharer's earnings per month."""
    charts = []
    for currency in sorted({r.currency for r in rows}):
        values = {r.month: (r.amount,) for r in rows if r.currency == currency}

        def describe(minor: int, currency: str = currency) -> str:
            return money.format_money(minor, currency, locale)

        chart = bar_chart(values, ("earnings",), "month", describe=describe, width=480, height=120)
        charts.append((currency, chart))
    return charts


@router.get("/orders/{order_id:id}")
def order_page(request: Request, order_id: str) -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    bad = _bad_id(request, order_id, role)
    if bad is not None:
        return bad
    with request.app.state.store.read() as conn:
        story = order_story(conn, order_id)
    if story is None:
        return _problem(request, 404, "Not found", f"No order {order_id!r}.", role)
    return _render(
        "order.html",
        request=request,
        title=f"Order {order_id}",
        role=role,
        nav="balances",
        story=story,
    )


def totals_charts(rows: list[Total], period: Period, locale: str) -> list[tuple[str, Chart]]:
    """One chart per currency: a merchant charges bar and a fees bar per period, on a
    continuous axis (refund days below zero, quiet days as gaps)."""
    charts = []
    for currency in sorted({r.currency for r in rows}):
        values = {r.period: (r.merchant_charges, r.fees) for r in rows if r.currency == currency}

        def describe(minor: int, currency: str = currency) -> str:
            return money.format_money(minor, currency, locale)

        charts.append(
            (
                currency,
                bar_chart(values, ("merchant charges", "platform fees"), period, describe=describe),
            )
        )
    return charts


@router.get("/totals")
def totals_page(request: Request, period: str = "day") -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    chosen: Period = "month" if period == "month" else "day"
    with request.app.state.store.read() as conn:
        rows = totals.totals(conn, period=chosen)
    return _render(
        "totals.html",
        request=request,
        title="Fees and charges",
        role=role,
        nav="totals",
        period=chosen,
        rows=rows,
        charts=totals_charts(rows, chosen, reader_locale(request)),
    )


@router.get("/dead-letters")
def dead_letters_page(request: Request) -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    try:
        after = _cursor(request, (int,))
    except paging.InvalidCursor as bad:
        return _problem(request, 400, "Bad request", str(bad.detail), role)
    left = request.query_params.get("redriven") == "false"  # what is left to correct
    with request.app.state.store.read() as conn:
        found = operations.dead_letters(
            conn, after=after, limit=PAGE, redriven=False if left else None
        )
        reasons = operations.dead_letter_reasons(conn)
    return _render(
        "dead_letters.html",
        request=request,
        title="Dead letters",
        role=role,
        nav="dead",
        rows=found.items,
        reasons=reasons,
        left=left,
        next_cursor=paging.encode(found.after),
    )
