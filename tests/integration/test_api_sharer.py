"""A sharer's own view (``/api/v1/me``): a token bound to one sharer reads that sharer's
balances, orders and payouts, the same figures finance reads for them, and no id, cursor,
query or path reaches another sharer's data or anything else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.api import paging
from ledger.api.app import create_app
from ledger.api.auth import TokenBook, token_item
from ledger.web.pages import mount
from tests.support.api import TOKEN_CONFIG, auth, small_ledger

ALICE, BOB = "u00000", "u00001"  # the simulator's first sharers: both earn and are paid
TOKENS = {ALICE: "alice-token-1", BOB: "bob-token-1"}


def mine(sharer_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[sharer_id]}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    store = small_ledger(tmp_path_factory.mktemp("sharer") / "ledger.sqlite", orders=300)
    config = ",".join([TOKEN_CONFIG, *(token_item("sharer", t, s) for s, t in TOKENS.items())])
    with TestClient(mount(create_app(store, TokenBook.parse(config)))) as http:
        yield http
    store.dispose()


def _all(client: TestClient, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = {"limit": 7} if cursor is None else {"limit": 7, "cursor": cursor}
        page = client.get(path, params=params, headers=headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def test_my_view_is_what_finance_reads_of_me(client) -> None:
    for sharer in (ALICE, BOB):
        own = client.get("/api/v1/me", headers=mine(sharer))
        assert own.status_code == 200, own.text
        assert own.json() == client.get(f"/api/v1/sharers/{sharer}", headers=auth("finance")).json()
        assert own.json()["balances"], "the fixture's sharers have balances"
        orders = _all(client, "/api/v1/me/orders", mine(sharer))
        assert orders and orders == _all(
            client, f"/api/v1/sharers/{sharer}/orders", auth("finance")
        )


def test_my_payouts_are_mine_and_all_of_them(client) -> None:
    alice = _all(client, "/api/v1/me/payouts", mine(ALICE))
    bob = _all(client, "/api/v1/me/payouts", mine(BOB))
    assert alice and bob
    assert {p["sharer_id"] for p in alice} == {ALICE}
    assert {p["sharer_id"] for p in bob} == {BOB}
    assert not {p["payout_id"] for p in alice} & {p["payout_id"] for p in bob}


def test_a_cursor_made_from_another_sharers_rows_still_reads_only_mine(client) -> None:
    bobs = _all(client, "/api/v1/me/orders", mine(BOB))
    alices = {o["order_id"] for o in _all(client, "/api/v1/me/orders", mine(ALICE))}
    for order in bobs[:5]:
        cursor = paging.encode((order["order_id"],))
        page = client.get("/api/v1/me/orders", params={"cursor": cursor}, headers=mine(ALICE))
        assert page.status_code == 200
        assert {o["order_id"] for o in page.json()["items"]} <= alices


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/me?sharer_id={BOB}",
        f"/api/v1/me/orders?sharer_id={BOB}",
        f"/api/v1/me/{BOB}",
        f"/api/v1/me/orders/{BOB}",
        f"/api/v1/me/../sharers/{BOB}",
        f"/api/v1/me/%2e%2e/sharers/{BOB}",
        f"/api/v1/me/..%2fsharers%2f{BOB}",
        f"/api/v1/me//sharers/{BOB}",
    ],
)
def test_no_path_or_query_reaches_another_sharer(client, path) -> None:
    answer = client.get(path, headers=mine(ALICE))
    if answer.status_code == 200:
        assert answer.json().get("sharer_id", ALICE) == ALICE, answer.text
        assert BOB not in answer.text.replace(f'"downline_id":"{BOB}"', "")
    else:
        assert answer.status_code in (403, 404, 405), answer.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/balances"),
        ("GET", f"/api/v1/balances?sharer_id={ALICE}"),
        ("GET", f"/api/v1/sharers/{ALICE}"),
        ("GET", f"/api/v1/sharers/{BOB}"),
        ("GET", f"/api/v1/sharers/{BOB}/orders"),
        ("GET", "/api/v1/orders/ord-000001/payouts"),
        ("GET", "/api/v1/totals"),
        ("GET", "/api/v1/dead-letters"),
        ("GET", "/api/v1/parked"),
        ("GET", "/api/v1/lag"),
        ("GET", f"/api/v1/audit/entries?sharer_id={BOB}"),
        ("GET", "/api/v1/audit/verify"),
        ("POST", "/api/v1/events"),
        ("POST", "/api/v1/settlement-runs"),
        ("POST", "/api/v1/payouts"),
        ("POST", "/api/v1/plans"),
    ],
)
def test_a_sharers_token_opens_nothing_but_its_own_view(client, method, path) -> None:
    answer = client.request(method, path, headers=mine(ALICE), json={})
    assert answer.status_code == 403, (path, answer.status_code, answer.text)


def test_staff_tokens_have_no_own_view(client) -> None:
    for role in ("finance", "auditor", "publisher"):
        assert client.get("/api/v1/me", headers=auth(role)).status_code == 403


def test_the_dashboard_does_not_take_a_sharers_token(client) -> None:
    answer = client.post("/dashboard/login", data={"token": TOKENS[ALICE]}, follow_redirects=False)
    assert answer.status_code != 303 or "dashboard" not in answer.headers.get("location", "")


def test_a_sharer_token_item_round_trips_any_id() -> None:
    for sharer in ("S1", "S,1", "S:1:2", "百分之%", "a b"):
        book = TokenBook.parse(token_item("sharer", "t-" + sharer, sharer))
        assert book.sharer_of("t-" + sharer) == sharer
        assert book.role_of("t-" + sharer) == "sharer"
    from ledger.api.auth import TokenConfigError, hash_token

    for bad in (f"sharer:{hash_token('x')}", f"sharer:{hash_token('x')}:%FF", "sharer:abc:S1"):
        with pytest.raises(TokenConfigError):
            TokenBook.parse(bad)
    assert TokenBook.parse(token_item("finance", "f")).sharer_of("f") is None
