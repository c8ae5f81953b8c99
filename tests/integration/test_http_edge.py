"""The HTTP edge through the test client: security headers on every response, /docs with
nothing from another host, the dashboard's forms refused cross-site (login CSRF), crafted
cursors and ids answered with a 4xx and a message (never a 500), bodies over a route's
limit refused with 413. Real servers, memory and load: test_http_load.py."""

from __future__ import annotations

import base64
import json
import re
import string
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.api import edge, paging
from ledger.api.app import create_app
from ledger.store.opening import open_store
from ledger.web.pages import mount
from tests.support.api import TOKENS, auth, dashboard_login, small_ledger, token_book

SECURITY = ("x-frame-options", "content-security-policy", "x-content-type-options")


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("edge") / "ledger.sqlite"
    small_ledger(path, orders=60).dispose()
    return path


@pytest.fixture(scope="module")
def client(ledger_path):
    app = mount(create_app(open_store(f"sqlite:///{ledger_path}"), token_book()))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def signed_in(ledger_path):
    """A fresh client signed in to the dashboard as finance (its own cookies)."""
    app = mount(create_app(open_store(f"sqlite:///{ledger_path}"), token_book()))
    with TestClient(app) as test_client:
        assert dashboard_login(test_client, TOKENS["finance"]).status_code == 303
        yield test_client


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- headers ---------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(signed_in) -> None:
    finance = auth("finance")
    requests = [
        ("GET", "/api/v1/balances", finance, 200),
        ("GET", "/api/v1/balances", {}, 401),
        ("GET", "/api/v1/orders/no-such-order/payouts", finance, 404),
        ("GET", "/api/v1/balances?limit=0", finance, 422),
        ("GET", "/api/v1/balances?cursor=x", finance, 400),
        ("POST", "/api/v1/settlement-runs", auth("auditor"), 403),
        ("GET", "/dashboard/", {}, 200),
        ("GET", "/dashboard/totals", {}, 200),
        ("GET", "/dashboard/dead-letters", {}, 200),
        ("GET", "/dashboard/sharers/%00", {}, 400),
        ("GET", "/dashboard/login", {}, 200),
        ("GET", "/static/style.css", {}, 200),
        ("GET", "/docs", {}, 200),
        ("GET", "/docs/start.js", {}, 200),
        ("GET", "/docs/assets/swagger-ui.css", {}, 200),
        ("GET", "/openapi.json", {}, 200),
        ("GET", "/no-such-page", {}, 404),
    ]
    for method, path, headers, status in requests:
        response = signed_in.request(method, path, headers=headers)
        assert response.status_code == status, (path, response.text[:300])
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
        if path.startswith(("/api/", "/dashboard/")):
            assert response.headers["cache-control"] == "no-store", path
    too_big = signed_in.post("/dashboard/login", content=b"x" * (edge.MAX_FORM_BODY + 1))
    assert too_big.status_code == 413 and all(h in too_big.headers for h in SECURITY)


def test_even_an_unexpected_500_carries_the_headers(ledger_path) -> None:
    app = create_app(open_store(f"sqlite:///{ledger_path}"), token_book())

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")
    assert response.status_code == 500
    assert all(h in response.headers for h in SECURITY)


def test_the_dashboard_allows_no_inline_script_or_style(signed_in) -> None:
    csp = signed_in.get("/dashboard/").headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    for page in ("/dashboard/", "/dashboard/totals", "/dashboard/dead-letters"):
        html = signed_in.get(page).text
        assert "<script" not in html and " style=" not in html, page


# --- /docs -----------------------------------------------------------------------------


def test_docs_reference_only_this_server_and_every_asset_answers(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    start = client.get("/docs/start.js")
    assert start.status_code == 200
    assert start.headers["content-type"].startswith("text/javascript")
    for text in (page.text, start.text):
        assert "//" not in text.replace("<!doctype", ""), text  # no scheme, no host
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(
        r'url: "([^"]+)"', start.text
    )
    assert len(urls) >= 5, urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert "swagger-ui-bundle.js" in page.text and "/openapi.json" in start.text
    assert client.get("/redoc").status_code == 404  # not served: it would need a CDN font


# --- dashboard forms: CSRF -------------------------------------------------------------


def _login_form(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/dashboard/login").text)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "http://evil.example/page"},
        {"Origin": "http://evil.example", "Referer": "http://testserver/dashboard/login"},
        {"Referer": "http://testserver.evil.example/"},
        {"Origin": "http://[::1"},  # unparsable: was a 500 (urlsplit raised)
        {"Referer": "http://[::1/x"},
    ],
    ids=[
        "origin",
        "null-origin",
        "suffix-origin",
        "referer",
        "origin-over-referer",
        "suffix-referer",
        "bad-origin",
        "bad-referer",
    ],
)
def test_a_cross_site_sign_in_is_refused(ledger_path, headers) -> None:
    app = mount(create_app(open_store(f"sqlite:///{ledger_path}"), token_book()))
    with TestClient(app) as client:
        csrf = _login_form(client)
        response = client.post(
            "/dashboard/login",
            data={"token": TOKENS["finance"], "csrf": csrf},
            headers=headers,
            follow_redirects=False,
        )
        assert response.status_code == 403, response.text
        assert "ledger_token" not in response.headers.get("set-cookie", "")
        assert client.get("/dashboard/", follow_redirects=False).status_code == 303  # signed out


@pytest.mark.parametrize("csrf", [None, "", "forged"], ids=["missing", "empty", "forged"])
def test_a_sign_in_without_the_forms_token_is_refused(ledger_path, csrf) -> None:
    app = mount(create_app(open_store(f"sqlite:///{ledger_path}"), token_book()))
    with TestClient(app) as client:
        _login_form(client)  # the cookie is set; the attacker's form cannot know its value
        data = {"token": TOKENS["finance"]} | ({} if csrf is None else {"csrf": csrf})
        response = client.post(
            "/dashboard/login",
            data=data,
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )
        assert response.status_code == 403
        assert "expired" in response.text
        assert "ledger_token" not in response.headers.get("set-cookie", "")


def test_a_same_origin_sign_in_works_with_strict_cookies(ledger_path) -> None:
    app = mount(create_app(open_store(f"sqlite:///{ledger_path}"), token_book()))
    with TestClient(app) as client:
        response = dashboard_login(client, TOKENS["finance"])
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
        assert 'id="balances"' in client.get("/dashboard/").text
        refused = dashboard_login(client, TOKENS["publisher"])
        assert refused.status_code == 401 and "not a finance" in refused.text


def test_sign_out_is_refused_cross_site_and_works_from_the_page(signed_in) -> None:
    page = signed_in.get("/dashboard/")
    csrf = re.search(
        r'action="/dashboard/logout"><input type="hidden" name="csrf" value="(\w+)"', page.text
    )
    assert csrf is not None, page.text
    for headers, data in [
        ({"Origin": "http://evil.example"}, {"csrf": csrf.group(1)}),
        ({"Origin": "http://testserver"}, {}),
        ({"Origin": "http://testserver"}, {"csrf": "0" * 64}),
    ]:
        refused = signed_in.post(
            "/dashboard/logout", data=data, headers=headers, follow_redirects=False
        )
        assert refused.status_code == 403, (headers, data)
        assert signed_in.get("/dashboard/", follow_redirects=False).status_code == 200
    done = signed_in.post(
        "/dashboard/logout",
        data={"csrf": csrf.group(1)},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/login"
    assert signed_in.get("/dashboard/", follow_redirects=False).status_code == 303


# --- cursors ---------------------------------------------------------------------------

API_PAGES = [  # (path, role)
    ("/api/v1/balances", "finance"),
    ("/api/v1/sharers/u00001/orders", "finance"),
    ("/api/v1/dead-letters", "finance"),
    ("/api/v1/parked", "auditor"),
    ("/api/v1/audit/entries?order_id=ord-000001", "auditor"),
]
DASHBOARD_PAGES = ["/dashboard/", "/dashboard/dead-letters"]
CRAFTED = {
    "lone-surrogate": _b64(b'["\\ud800","b"]'),
    "lone-surrogate-one": _b64(b'["\\udfff"]'),
    "nested-1400": _b64(b"[" * 1400),
    "nested-in-list": _b64(b'[1,[[[[[["x"]]]]]]]'),
    "object": _b64(b'{"a":1}'),
    "nul": _b64(b'["\\u0000","CNY"]'),
    "bool": _b64(b"[true]"),
    "float": _b64(b"[1.5]"),
    "huge-int": _b64(b"[" + b"9" * 1500 + b"]"),
    "int64-overflow": _b64(b"[9223372036854775808]"),
    "nan": _b64(b"[NaN]"),
    "latin1-bytes": _b64(b'["\xff\xfe"]'),
    "not-base64": "%%%",
    "non-ascii": "ü",
    "empty": "",
    "long": "A" * 5000,
}


def _url(path: str, cursor: str) -> str:
    from urllib.parse import quote

    return f"{path}{'&' if '?' in path else '?'}cursor={quote(cursor, safe='')}"


@pytest.mark.parametrize("cursor", list(CRAFTED.values()), ids=list(CRAFTED))
def test_a_crafted_cursor_gets_a_4xx_with_a_message_everywhere(signed_in, cursor) -> None:
    for path, role in API_PAGES:
        response = signed_in.get(_url(path, cursor), headers=auth(role))
        assert response.status_code in (400, 422), (path, response.status_code, response.text)
        assert response.json()["detail"], path
    for path in DASHBOARD_PAGES:
        response = signed_in.get(_url(path, cursor))
        assert response.status_code == 400, (path, response.status_code)
        assert "invalid cursor" in response.text


def test_real_cursors_still_page_through(signed_in) -> None:
    seen, cursor = [], None
    while True:
        query = "?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = signed_in.get(f"/api/v1/balances{query}", headers=auth("finance")).json()
        seen += [(r["sharer_id"], r["currency"]) for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert paging.decode(cursor, (str, str)) == seen[-1]
    everything = signed_in.get("/api/v1/balances?limit=1000", headers=auth("finance")).json()
    assert seen == [(r["sharer_id"], r["currency"]) for r in everything["items"]]
    nxt = re.search(r'href="\?cursor=([\w-]+)"', signed_in.get("/dashboard/").text)
    if nxt is not None:
        assert signed_in.get(f"/dashboard/?cursor={nxt.group(1)}").status_code == 200


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


def _mutations(real: str) -> st.SearchStrategy[str]:
    alphabet = string.ascii_letters + string.digits + "-_=+/%"
    return st.tuples(
        st.integers(0, len(real)), st.integers(0, 4), st.text(alphabet=alphabet, max_size=4)
    ).map(lambda m: real[: m[0]] + m[2] + real[m[0] + m[1] :])


REAL = {
    "balances": paging.encode(("u00001", "CNY")) or "",
    "orders": paging.encode(("ord-000001",)) or "",
    "ids": paging.encode((3,)) or "",
}
cursors = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=80).map(_b64),
    json_values.map(lambda v: _b64(json.dumps(v).encode())),
    st.lists(st.text(max_size=30) | st.integers(-(2**64), 2**64), max_size=3).map(
        lambda v: _b64(json.dumps(v).encode())
    ),
    st.sampled_from(sorted(REAL.values())).flatmap(_mutations),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(cursor=cursors)
def test_any_cursor_gives_a_4xx_with_a_message_or_a_correct_page(signed_in, cursor) -> None:
    for path, role in API_PAGES:
        response = signed_in.get(_url(path, cursor), headers=auth(role))
        assert response.status_code in (200, 400, 422), (path, cursor, response.text)
        body = response.json()
        if response.status_code != 200:
            assert body["detail"], (path, cursor)
            continue
        if path == "/api/v1/balances":  # keyset: every row comes after the cursor's key
            after = paging.decode(cursor, (str, str))
            keys = [(r["sharer_id"], r["currency"]) for r in body["items"]]
            assert keys == sorted(keys) and all(k > after for k in keys)
    for path in DASHBOARD_PAGES:
        response = signed_in.get(_url(path, cursor))
        assert response.status_code in (200, 400), (path, cursor)
        if response.status_code == 400:
            assert "invalid cursor" in response.text


def test_decode_raises_nothing_but_invalid_cursor() -> None:
    @settings(max_examples=500, deadline=None)
    @given(cursor=cursors, types=st.sampled_from([(str, str), (str,), (int,)]))
    def check(cursor: str, types: tuple[type, ...]) -> None:
        try:
            key = paging.decode(cursor, types)
        except paging.InvalidCursor as bad:
            assert bad.status_code == 400 and bad.detail
            return
        assert key is not None and paging.decode(paging.encode(key), types) == key

    check()


# --- ids and other parameters of the dashboard -----------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/sharers/%00",
        "/dashboard/sharers/a%09b",
        "/dashboard/orders/a%1Fb",
        "/dashboard/orders/%7F",
        f"/dashboard/sharers/{'x' * 201}",
        f"/dashboard/orders/{'x' * 5000}",
        "/dashboard/lookup?q=",
        "/dashboard/lookup?q=%00",
        f"/dashboard/lookup?q={'q' * 201}",
    ],
)
def test_an_id_no_event_could_carry_gets_400_on_the_dashboard(signed_in, path) -> None:
    response = signed_in.get(path, follow_redirects=False)
    assert response.status_code == 400, (path, response.status_code)
    assert "Not an id" in response.text


def test_a_newline_in_a_dashboard_id_is_a_4xx(signed_in) -> None:
    response = signed_in.get("/dashboard/sharers/a%0Ab", follow_redirects=False)
    assert response.status_code in (400, 404)  # no route takes a newline


def test_lookup_finds_orders_and_sharers(signed_in) -> None:
    order = signed_in.get("/dashboard/lookup?q=ord-000001", follow_redirects=False)
    assert order.headers["location"] == "/dashboard/orders/ord-000001"
    sharer = signed_in.get("/dashboard/lookup?q=%20u00001%20", follow_redirects=False)
    assert sharer.headers["location"] == "/dashboard/sharers/u00001"


# --- bodies ----------------------------------------------------------------------------


def test_a_body_over_its_routes_limit_gets_413(signed_in) -> None:
    cases = [
        ("/dashboard/login", {}, edge.MAX_FORM_BODY),
        ("/dashboard/logout", {}, edge.MAX_FORM_BODY),
        ("/api/v1/payouts", auth("finance"), edge.MAX_COMMAND_BODY),
        ("/api/v1/settlement-runs", auth("finance"), edge.MAX_COMMAND_BODY),
    ]
    for path, headers, limit in cases:
        over = signed_in.post(path, content=b" " * (limit + 1), headers=headers)
        assert over.status_code == 413, (path, over.text)
        assert str(limit) in over.json()["detail"]
        # a streamed body has no Content-Length: counted as it arrives
        streamed = signed_in.post(
            path, content=iter([b" " * 4096] * (limit // 4096 + 2)), headers=headers
        )
        assert streamed.status_code == 413, (path, streamed.text)
    at_limit = signed_in.post(
        "/api/v1/settlement-runs",
        content=json.dumps({"run_id": "r-edge"}).ljust(edge.MAX_COMMAND_BODY).encode(),
        headers={**auth("finance"), "Content-Type": "application/json"},
    )
    assert at_limit.status_code == 200, at_limit.text


def test_the_event_limit_admits_the_largest_legitimate_event() -> None:
    """MAX_LINES lines with MAX_ID-character ids, each character an escaped astral one:
    the biggest body the rules accept, compactly written, fits the /events limit."""
    from ledger.domain.validation import MAX_AMOUNT, MAX_ID, MAX_LINES

    big = "\U0001f600" * MAX_ID
    line = {
        "line_id": big,
        "product_id": big,
        "quantity": 10**9,
        "amount": MAX_AMOUNT,
        "merchant_rate_bps": 10_000,
    }
    event = {
        "type": "order_placed",
        "event_id": big,
        "occurred_at": "9999-12-31T23:59:59.999Z",
        "producer": big,
        "order_id": big,
        "buyer_id": big,
        "merchant_id": big,
        "currency": "CNY",
        "click_id": big,
        "lines": [line] * MAX_LINES,
    }
    size = len(json.dumps(event, separators=(",", ":")))  # ensure_ascii: \ud83d\ude00
    assert size <= edge.MAX_EVENT_BODY < 2 * size
    assert edge.body_limit("/api/v1/events") == edge.MAX_EVENT_BODY
    assert edge.body_limit("/dashboard/login") == edge.MAX_FORM_BODY


def test_hostile_ids_and_cursors_on_both_backends(db_url) -> None:
    """On PostgreSQL a NUL or a lone surrogate reaching a query raised in the driver (500);
    each is now refused before the database sees it."""
    small_ledger(db_url, orders=20).dispose()
    app = mount(create_app(open_store(db_url), token_book()))
    surrogate = CRAFTED["lone-surrogate"]
    with TestClient(app, raise_server_exceptions=False) as client:
        assert dashboard_login(client, TOKENS["finance"]).status_code == 303
        for path in [
            "/dashboard/sharers/%00",
            "/dashboard/orders/%00",
            "/dashboard/lookup?q=a%00b",
            _url("/dashboard/", surrogate),
            _url("/dashboard/dead-letters", CRAFTED["nested-1400"]),
            _url("/api/v1/balances", surrogate),
            _url("/api/v1/sharers/u00001/orders", CRAFTED["lone-surrogate-one"]),
            _url("/api/v1/dead-letters", CRAFTED["nested-1400"]),
            _url("/api/v1/balances", CRAFTED["nul"]),
        ]:
            response = client.get(path, headers=auth("finance"))
            assert response.status_code == 400, (path, response.status_code, response.text[:300])


def test_a_sharer_whose_id_holds_a_slash_is_reachable_on_the_dashboard(tmp_path) -> None:
    from ledger.domain.events import SharerEnrolled
    from ledger.service import LedgerService, Received

    store = small_ledger(tmp_path / "ledger.sqlite", orders=5)
    enrolled = SharerEnrolled("enrol-team/a", 1, "test", sharer_id="team/a", upline_id=None)
    LedgerService(store).ingest([Received(enrolled, "test:1", "test")])
    with TestClient(mount(create_app(store, token_book()))) as client:
        assert dashboard_login(client, TOKENS["finance"]).status_code == 303
        found = client.get("/dashboard/lookup?q=team/a")
        assert found.status_code == 200 and "Sharer team/a" in found.text
        # an id is one encoded path segment (ledger/api/ids.py): "/" is %2F, never a separator
        assert client.get("/dashboard/sharers/team%2Fa").status_code == 200
        assert client.get("/dashboard/sharers/team/a").status_code == 404


def test_admission_fits_the_pool(tmp_path) -> None:
    """Two connections per admitted request and one for the views' catch-up fit the pool."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from ledger.api.app import db_capacity

    default = create_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")  # QueuePool 5 + 10
    assert db_capacity(default) == 7 and 2 * 7 + 1 <= 15
    small = create_engine(f"sqlite:///{tmp_path / 'b.sqlite'}", pool_size=2, max_overflow=0)
    assert db_capacity(small) == 1
    assert db_capacity(create_engine(f"sqlite:///{tmp_path / 'c.sqlite'}", poolclass=NullPool)) == 4
