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

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ledger.api import paging
from ledger.api.ids import id_segment
from ledger.domain.validation import MAX_ID, valid_event_id
from ledger.read import balances, operations, orders, sharers, totals
from ledger.read.models import Total
from ledger.read.order_story import order_story
from schemas.times import ms_to_iso

HERE = Path(__file__).parent
COOKIE = "ledger_token"
CSRF_COOKIE = "ledger_csrf"  # the sign-in form's double-submit token
ROLES = ("finance", "auditor")
FIELDS = ("pending", "available", "inflight", "paid", "earned", "reversed")
PAGE = 50

router = APIRouter(prefix="/dashboard", include_in_schema=False)
static = StaticFiles(directory=HERE / "static")
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)
templates.filters["ms"] = lambda ms: "—" if ms is None else ms_to_iso(ms)
DOT_IDS = (".", "..")  # a browser drops such a path segment (WHATWG URL rules)


def page_of(kind: str, the_id: str) -> str:
    """The dashboard URL of a sharer or an order (``kind``: "sharers" or "orders"): its id
    as one path segment (ledger/api/ids.py), or, for "." and "..", the lookup with the id
    in the query, so that a browser reaches every id."""
    if the_id in DOT_IDS:
        return f"/dashboard/lookup?{urlencode({'kind': kind, 'q': the_id})}"
    return f"/dashboard/{kind}/{id_segment(the_id)}"


templates.globals["page_of"] = page_of


def mount(app: FastAPI) -> FastAPI:
    """Add the dashboard (pages and static assets) to an app from ``ledger.api.app``."""
    from ledger.web import downloads  # it imports this module's session checks

    app.include_router(router)
    app.include_router(downloads.router)
    app.mount("/static", static, name="static")
    return app


def _render(
    name: str, status: int = 200, request: Request | None = None, **context: Any
) -> HTMLResponse:
    csrf = _session_csrf(request) if request is not None else ""
    return HTMLResponse(
        templates.get_template(name).render(csrf=csrf, **context), status_code=status
    )


def _problem(
    request: Request, status: int, heading: str, message: str, role: str | None = None
) -> HTMLResponse:
    return _render(
        "problem.html",
        status=status,
        request=request,
        title=heading,
        role=role,
        heading=heading,
        message=message,
    )


def _role(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    role = request.app.state.tokens.role_of(token) if token else None
    return role if role in ROLES else None


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/dashboard/login", status_code=303)


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was posted from in Origin (else Referer): it must
    be this host. Neither header (a script, not a browser): the form token decides.
    Compared as text, never parsed: a malformed header is just another origin."""
    host = request.headers.get("host", "")
    origins = (f"http://{host}", f"https://{host}")
    origin = request.headers.get("origin")
    if origin is not None:
        return bool(host) and origin in origins  # "null" (a sandbox, a redirect): refused
    referer = request.headers.get("referer")
    if referer is not None:
        return bool(host) and referer.startswith(tuple(f"{o}/" for o in origins))
    return True


def _session_csrf(request: Request | None) -> str:
    """The sign-out form's token: derived from the session, unknown to another site."""
    token = request.cookies.get(COOKIE) if request is not None else None
    if not token:
        return ""
    return hmac.new(token.encode("utf-8", "surrogatepass"), b"logout", hashlib.sha256).hexdigest()


async def _form(request: Request) -> dict[str, str]:
    """The posted form's first value of each field (the body is bounded by the edge)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {name: values[0] for name, values in form.items()}


def _matches(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def _forbidden(request: Request) -> HTMLResponse:
    return _problem(request, 403, "Forbidden", "This form was not sent from this site's own page.")


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


def _https(request: Request) -> bool:
    return request.scope.get("scheme") == "https"  # not request.url: a bad Host would raise


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
        found = balances.balances(conn, after=after, limit=PAGE)  # type: ignore[arg-type]
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
    with request.app.state.store.read() as conn:
        context: dict[str, Any] = {
            "balances": balances.balances(conn, sharer_id=sharer_id, limit=1000).items,
            "team": sharers.team(conn, sharer_id),
            "earnings": sharers.earnings(conn, sharer_id),
            "orders": orders.sharer_orders(conn, sharer_id, limit=200).items,
        }
    return _render(
        "sharer.html",
        request=request,
        title=f"Sharer {sharer_id}",
        role=role,
        nav="balances",
        sharer_id=sharer_id,
        fields=FIELDS,
        **context,
    )


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


def chart(rows: list[Total], currency: str, width: int = 960, height: int = 220) -> dict[str, Any]:
    """Bar positions for one currency's periods: a charges bar and a fees bar each."""
    mine = [r for r in rows if r.currency == currency][-120:]
    top = max([max(r.merchant_charges, r.fees, 0) for r in mine] + [1])
    slot = max(2, width // max(len(mine), 1))
    w = max(1, (slot - 2) // 2)
    every = max(1, len(mine) // 8)  # label about eight periods

    def bar_height(value: int) -> int:
        return max(0, value) * height // top

    bars = []
    for n, r in enumerate(mine):
        ch, fh = bar_height(r.merchant_charges), bar_height(r.fees)
        bars.append(
            {
                "x": n * slot,
                "w": w,
                "period": r.period,
                "label": n % every == 0,
                "charges": r.merchant_charges,
                "fees": r.fees,
                "charges_h": ch,
                "charges_y": height - ch,
                "fees_h": fh,
                "fees_y": height - fh,
            }
        )
    return {
        "currency": currency,
        "bars": bars,
        "width": max(width, len(mine) * slot),
        "height": height,
        "max": top,
    }


@router.get("/totals")
def totals_page(request: Request, period: str = "day") -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    period = period if period in ("day", "month") else "day"
    with request.app.state.store.read() as conn:
        rows = totals.totals(conn, period=period)  # type: ignore[arg-type]
    currencies = sorted({r.currency for r in rows})
    return _render(
        "totals.html",
        request=request,
        title="Fees and charges",
        role=role,
        nav="totals",
        period=period,
        rows=rows,
        charts=[chart(rows, c) for c in currencies],
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
    with request.app.state.store.read() as conn:
        found = operations.dead_letters(conn, after=after, limit=PAGE)  # type: ignore[arg-type]
        reasons = operations.dead_letter_reasons(conn)
    return _render(
        "dead_letters.html",
        request=request,
        title="Dead letters",
        role=role,
        nav="dead",
        rows=found.items,
        reasons=reasons,
        next_cursor=paging.encode(found.after),
    )
