"""What every dashboard page shares: the templates, rendering a page in the reader's
locale, the problem page, and the checks of a posted form (same origin, its token)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ledger.api.ids import id_segment
from ledger.read import money
from ledger.web.session import COOKIE
from schemas.times import ms_to_iso

HERE = Path(__file__).parent
LOCALE_COOKIE = "ledger_locale"  # set by ?lang=: the reader's choice of en or zh_CN
CSRF_COOKIE = "ledger_csrf"  # the sign-in form's double-submit token
FIELDS = ("pending", "available", "inflight", "paid", "earned", "reversed")
PAGE = 50

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


def _render(
    name: str, status: int = 200, request: Request | None = None, **context: Any
) -> HTMLResponse:
    csrf = _session_csrf(request) if request is not None else ""
    locale = reader_locale(request)

    def amount(minor: int, currency: str) -> str:
        return money.format_money(minor, currency, locale)

    def in_locale(other: str) -> str:
        """This page (its query kept) in another locale."""
        query = dict(request.query_params) if request is not None else {}
        return "?" + urlencode({**query, "lang": other})

    response = HTMLResponse(
        templates.get_template(name).render(
            csrf=csrf,
            locale=locale,
            money=amount,
            locales=money.LOCALES,
            in_locale=in_locale,
            **context,
        ),
        status_code=status,
    )
    if request is not None and request.query_params.get("lang"):
        response.set_cookie(
            LOCALE_COOKIE, locale, samesite="strict", path="/dashboard", secure=_https(request)
        )
    return response


def reader_locale(request: Request | None) -> str:
    """How amounts read for this request: ?lang=, else the cookie it set, else the
    browser's Accept-Language, else the server's LEDGER_LOCALE (each one of LOCALES)."""
    if request is None:
        return money.DEFAULT_LOCALE
    chosen = request.query_params.get("lang") or request.cookies.get(LOCALE_COOKIE)
    if chosen:
        return money.locale_of(chosen)
    asked = money.from_accept_language(request.headers.get("accept-language"))
    return asked or str(getattr(request.app.state, "locale", money.DEFAULT_LOCALE))


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


def _https(request: Request) -> bool:
    return request.scope.get("scheme") == "https"  # not request.url: a bad Host would raise
