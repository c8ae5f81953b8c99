"""One rule for ids, from the contract to the URL (docs/security.md, "Ids in URLs"): every
id the rules accept is reachable on every route that takes one, in the API and on the
dashboard. ``POST /payouts`` accepted "batch/12", then ``/payouts/batch%2F12/settle``
answered 404, and sharers with "/" in their id had no page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.api.app import create_app
from ledger.api.ids import id_segment
from ledger.api.models import COMMAND_ID_MAX
from ledger.domain.events import OrderLine, OrderPlaced, SharerEnrolled
from ledger.domain.validation import valid_event_id
from ledger.store.opening import open_store
from ledger.web.pages import COOKIE, DOT_IDS, mount, page_of
from tests.support.api import TOKENS, auth, now_ms, publish, serving, token_book

F = auth("finance")
NOW = now_ms()
# any id the rules accept (kept short enough that "ev-…" event ids around it stay valid)
valid_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(valid_event_id)
TRICKY = ["batch/12", "/", "//", ".", "..", "...", "%2F", "a%41", "?q=1#x", " ", "é/ü", "x/orders"]
TRICKY.append("a/" * ((COMMAND_ID_MAX - 1) // 2) + "a")  # the longest payout id, all slashes


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("ids") / "ledger.sqlite"
    store = open_store(f"sqlite:///{path}")
    with TestClient(mount(create_app(store, token_book()))) as http:
        http.cookies.set(COOKIE, TOKENS["finance"])
        yield http
    store.dispose()


def _reach(client: TestClient, the_id: str) -> None:
    seg = id_segment(the_id)
    assert "/" not in seg and seg not in (".", "..")
    now = NOW  # the same id again publishes the same events (a replay, not a conflict)
    for event in (
        SharerEnrolled(f"ev-s-{the_id}", now, "users", sharer_id=the_id),
        SharerEnrolled(f"ev-k-{the_id}", now, "users", sharer_id=f"kid-{the_id}", upline_id=the_id),
        OrderPlaced(
            f"ev-o-{the_id}",
            now,
            "shop",
            order_id=the_id,
            buyer_id="b-ids",
            merchant_id="m",
            currency="CNY",
            lines=(OrderLine("l1", "p", 1, 100),),
        ),
    ):
        answer = publish(client, event)
        assert answer.status_code == 200, answer.text  # applied (or the same again)

    sharer = client.get(f"/api/v1/sharers/{seg}", headers=F)
    assert sharer.status_code == 200 and sharer.json()["sharer_id"] == the_id, sharer.text
    assert sharer.json()["team"]["enrolled"] is True
    assert client.get(f"/api/v1/sharers/{seg}/orders", headers=F).status_code == 200
    order = client.get(f"/api/v1/orders/{seg}/payouts", headers=F)
    assert order.status_code == 200 and order.json()["order_id"] == the_id, order.text

    requested = client.post(
        "/api/v1/payouts",
        headers=F,
        json={"payout_id": the_id, "sharer_id": the_id, "amount": 100, "currency": "CNY"},
    )
    assert requested.json()["event_id"] == f"payout-requested:{the_id}", requested.text
    for action in ("settle", "fail"):  # found (no 404): the rules answer (nothing in flight)
        ended = client.post(f"/api/v1/payouts/{seg}/{action}", headers=F)
        assert ended.status_code != 404, (action, ended.text)
        assert ended.json()["event_id"].endswith(f":{the_id}")

    if the_id not in DOT_IDS:
        page = client.get(f"/dashboard/sharers/{seg}")
        assert page.status_code == 200 and _shown(page.text) == ("Sharer", the_id)
        assert client.get(f"/dashboard/orders/{seg}").status_code == 200
    # the dashboard's own links reach the id, by a URL a browser keeps as it is
    kid = client.get(page_of("sharers", f"kid-{the_id}"))
    upline_link = re.search(r'<a href="([^"]*)">', kid.text)
    assert upline_link is not None
    link = html.unescape(upline_link.group(1))
    assert link == page_of("sharers", the_id) and _a_browser_keeps(link), link
    upline = client.get(link)
    assert upline.status_code == 200 and _shown(upline.text) == ("Sharer", the_id)
    found = client.get("/dashboard/lookup", params={"q": the_id}, follow_redirects=False)
    if the_id in DOT_IDS:  # shown by the lookup itself
        assert found.status_code == 200 and _shown(found.text) == ("Order", the_id)
    else:
        assert found.headers["location"] == page_of("orders", the_id)


def _shown(page: str) -> tuple[str, str] | None:
    """(kind, id) of the sharer or order page ``page`` shows, from its title."""
    title = re.search(r"<title>(Sharer|Order) (.*) · Commission ledger</title>", page, re.S)
    return (title.group(1), html.unescape(title.group(2))) if title else None


def _a_browser_keeps(link: str) -> bool:
    """No dot segment, literal or percent-encoded, that a browser would resolve away."""
    dots = {".", "..", "%2e", "%2e%2e", ".%2e", "%2e."}
    return all(part.lower() not in dots for part in urlsplit(link).path.split("/"))


@pytest.mark.parametrize("the_id", TRICKY)
def test_tricky_ids_are_reachable_everywhere(client, the_id) -> None:
    _reach(client, the_id)


@given(the_id=valid_ids)
@example(the_id="batch/12")
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_valid_id_is_reachable_everywhere(client, the_id) -> None:
    _reach(client, the_id)


def test_an_id_with_slashes_is_not_another_route(client) -> None:
    """A sharer "x/orders" is its own page, not sharer x's orders."""
    _reach(client, "x")
    _reach(client, "x/orders")
    page = client.get(f"/api/v1/sharers/{id_segment('x/orders')}", headers=F).json()
    assert page["sharer_id"] == "x/orders"


def test_a_segment_that_is_no_valid_id_is_refused(client) -> None:
    for seg in ("%FF", "%00", "a%0Ab", "%E2%80%A8"):  # not UTF-8, NUL, newline, U+2028
        assert client.get(f"/api/v1/sharers/{seg}", headers=F).status_code == 422, seg
        assert client.post(f"/api/v1/payouts/{seg}/settle", headers=F).status_code == 422, seg
        assert client.get(f"/dashboard/sharers/{seg}").status_code == 400, seg


def test_a_real_server_routes_encoded_ids(tmp_path) -> None:
    """uvicorn decodes the path before routing: the raw path must be what is routed."""
    db = tmp_path / "served.sqlite"
    open_store(f"sqlite:///{db}").dispose()
    with serving(db) as base, httpx.Client(base_url=base, timeout=10) as http:
        for the_id in ("batch/12", "..", "a%41", "é/ü"):
            enrolled = publish(http, SharerEnrolled(f"ev-{the_id}", NOW, "users", sharer_id=the_id))
            assert enrolled.status_code == 200, enrolled.text
            sharer = http.get(f"/api/v1/sharers/{id_segment(the_id)}", headers=F)
            assert sharer.status_code == 200 and sharer.json()["sharer_id"] == the_id
            assert sharer.json()["team"]["enrolled"] is True
            requested = http.post(
                "/api/v1/payouts",
                headers=F,
                json={"payout_id": the_id, "sharer_id": the_id, "amount": 100, "currency": "CNY"},
            )
            assert requested.status_code == 409  # nothing available: rejected, but recorded
            settle = http.post(f"/api/v1/payouts/{id_segment(the_id)}/settle", headers=F)
            assert (
                settle.status_code != 404
                and settle.json()["event_id"] == f"payout-settled:{the_id}"
            )
