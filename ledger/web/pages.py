"""Dashboard pages: balances, a sharer, an order's payout view, fee and merchant totals
(with an SVG chart drawn here, no script), dead letters; sign-in with an API token.

The session is the token itself in an HttpOnly, SameSite=Strict cookie, checked against
the configured hashes on every request (finance and auditor may sign in). Pages are not
part of the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select

from ledger.api import paging
from ledger.api.ids import id_segment
from ledger.domain.validation import valid_event_id
from ledger.store import tables as t
from projectors import read
from schemas.times import ms_to_iso

HERE = Path(__file__).parent
COOKIE = "ledger_token"
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
    app.include_router(router)
    app.mount("/static", static, name="static")
    return app


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status)


def _role(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    role = request.app.state.tokens.role_of(token) if token else None
    return role if role in ROLES else None


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/dashboard/login", status_code=303)


@router.get("/login")
def login_page() -> HTMLResponse:
    return _render("login.html", title="Sign in", role=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    role = request.app.state.tokens.role_of(token) if token else None
    if role not in ROLES:
        return _render(
            "login.html",
            status=401,
            title="Sign in",
            role=None,
            error="That token is not a finance or auditor token.",
        )
    response = RedirectResponse("/dashboard/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/dashboard")
    return response


@router.post("/logout")
def logout() -> Response:
    response = _login_redirect()
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


def _cursor(request: Request, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    try:
        return paging.decode(request.query_params.get("cursor"), types)
    except Exception:  # noqa: BLE001 - a mangled link shows the first page
        return None


@router.get("/")
def balances_page(request: Request) -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    with request.app.state.store.read() as conn:
        rows = read.balances(
            conn,
            after=_cursor(request, (str, str)),  # type: ignore[arg-type]
            limit=PAGE,
        )
    return _render(
        "balances.html",
        title="Balances",
        role=role,
        nav="balances",
        rows=rows,
        fields=FIELDS,
        as_of=None,
        next_cursor=paging.next_cursor(rows, PAGE, lambda r: (r["sharer_id"], r["currency"])),
    )


@router.get("/lookup")
def lookup(request: Request, q: str = "", kind: str = "") -> Response:
    """The header's search box: an order id or a sharer id (``kind`` says which)."""
    if _role(request) is None:
        return _login_redirect()
    if kind not in ("orders", "sharers"):
        with request.app.state.store.read() as conn:
            is_order = (
                conn.execute(select(t.orders.c.order_id).where(t.orders.c.order_id == q)).first()
                is not None
            )
        kind = "orders" if is_order else "sharers"
    if q in DOT_IDS:  # no path a browser keeps: the page is shown here
        return order_page(request, q) if kind == "orders" else sharer_page(request, q)
    return RedirectResponse(page_of(kind, q), status_code=303)


def _no_such(role: str, what: str) -> HTMLResponse:
    return _render("not_found.html", status=404, title="Not found", role=role, message=what)


@router.get("/sharers/{sharer_id:id}")
def sharer_page(request: Request, sharer_id: str) -> Response:
    role = _role(request)
    if role is None:
        return _login_redirect()
    if not valid_event_id(sharer_id):  # no such id can exist (ledger/domain/validation.py)
        return _no_such(role, "No such sharer: not a valid id.")
    with request.app.state.store.read() as conn:
        context: dict[str, Any] = {
            "balances": read.balances(conn, sharer_id=sharer_id, limit=1000),
            "team": read.team(conn, sharer_id),
            "earnings": read.earnings(conn, sharer_id),
            "orders": read.sharer_levels(conn, sharer_id, limit=200),
        }
    return _render(
        "sharer.html",
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
    if not valid_event_id(order_id):
        return _no_such(role, "No such order: not a valid id.")
    with request.app.state.store.read() as conn:
        order = read.order_levels(conn, order_id)
    if order is None:
        return _no_such(role, f"No order {order_id!r}.")
    return _render("order.html", title=f"Order {order_id}", role=role, nav="balances", order=order)


def chart(
    rows: list[dict[str, Any]], currency: str, width: int = 960, height: int = 220
) -> dict[str, Any]:
    """Bar positions for one currency's periods: a charges bar and a fees bar each."""
    mine = [r for r in rows if r["currency"] == currency][-120:]
    top = max([max(r["merchant_charges"], r["fees"], 0) for r in mine] + [1])
    slot = max(2, width // max(len(mine), 1))
    w = max(1, (slot - 2) // 2)
    every = max(1, len(mine) // 8)  # label about eight periods

    def bar_height(value: int) -> int:
        return max(0, value) * height // top

    bars = []
    for n, r in enumerate(mine):
        ch, fh = bar_height(r["merchant_charges"]), bar_height(r["fees"])
        bars.append(
            {
                "x": n * slot,
                "w": w,
                "period": r["period"],
                "label": n % every == 0,
                "charges": r["merchant_charges"],
                "fees": r["fees"],
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
        rows = read.totals(conn, period=period)
    currencies = sorted({r["currency"] for r in rows})
    return _render(
        "totals.html",
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
    d = t.dead_letters
    after = _cursor(request, (int,))
    query = select(d).order_by(d.c.id).limit(PAGE)
    if after is not None:
        query = query.where(d.c.id > after[0])
    with request.app.state.store.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        reasons = {
            reason: int(n)
            for reason, n in conn.execute(
                select(d.c.reason, func.count()).group_by(d.c.reason).order_by(d.c.reason)
            )
        }
    return _render(
        "dead_letters.html",
        title="Dead letters",
        role=role,
        nav="dead",
        rows=rows,
        reasons=reasons,
        next_cursor=paging.next_cursor(rows, PAGE, lambda r: (r["id"],)),
    )
