"""The HTTP API through the test client and against a real ``ledger serve`` on loopback:
roles (401/403), bad input (4xx with a message), commands becoming events, pagination,
OpenAPI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger.api.app import create_app
from tests.support.api import auth, serving, small_ledger, token_book

# (method, path, body, roles allowed)
ENDPOINTS = [
    ("GET", "/api/v1/balances", None, {"finance", "auditor"}),
    ("GET", "/api/v1/sharers/u00001", None, {"finance", "auditor"}),
    ("GET", "/api/v1/sharers/u00001/orders", None, {"finance", "auditor"}),
    ("GET", "/api/v1/orders/ord-000001/payouts", None, {"finance", "auditor"}),
    ("GET", "/api/v1/totals?period=month", None, {"finance", "auditor"}),
    ("GET", "/api/v1/dead-letters", None, {"finance", "auditor"}),
    ("GET", "/api/v1/parked", None, {"finance", "auditor"}),
    ("GET", "/api/v1/lag", None, {"finance", "auditor"}),
    ("POST", "/api/v1/settlement-runs", {"run_id": "r-roles"}, {"finance"}),
    (
        "POST",
        "/api/v1/payouts",
        {"payout_id": "p-roles", "sharer_id": "u00001", "amount": 5, "currency": "CNY"},
        {"finance"},
    ),
    ("GET", "/api/v1/audit/verify", None, {"auditor"}),
    ("GET", "/api/v1/audit/check", None, {"auditor"}),
    ("GET", "/api/v1/audit/entries?order_id=ord-000001", None, {"auditor"}),
    ("POST", "/api/v1/events", {"type": "nope"}, {"publisher"}),
]

BAD = [  # (role, method, path, body, status)
    ("finance", "GET", "/api/v1/balances?limit=0", None, 422),
    ("finance", "GET", "/api/v1/balances?limit=abc", None, 422),
    ("finance", "GET", "/api/v1/balances?as_of=99999999999999999999", None, 422),
    ("finance", "GET", "/api/v1/balances?currency=cny", None, 422),
    ("finance", "GET", "/api/v1/balances?cursor=not-a-cursor", None, 400),
    ("finance", "GET", "/api/v1/balances?cursor=WzEsMl0", None, 400),  # [1,2]: wrong types
    ("finance", "GET", "/api/v1/balances?sharer_id=%00", None, 422),
    ("finance", "GET", "/api/v1/orders/no-such-order/payouts", None, 404),
    ("finance", "GET", "/api/v1/totals?period=week", None, 422),
    (
        "finance",
        "POST",
        "/api/v1/payouts",
        {"payout_id": "p", "sharer_id": "s", "amount": 1.5, "currency": "CNY"},
        422,
    ),
    (
        "finance",
        "POST",
        "/api/v1/payouts",
        {"payout_id": "p", "sharer_id": "s", "amount": "9", "currency": "CNY"},
        422,
    ),
    (
        "finance",
        "POST",
        "/api/v1/payouts",
        {"payout_id": "p", "sharer_id": "s", "amount": 0, "currency": "CNY"},
        422,
    ),
    (
        "finance",
        "POST",
        "/api/v1/payouts",
        {"payout_id": "p", "sharer_id": "s", "amount": 10, "currency": "CNY", "extra": 1},
        422,
    ),
    ("finance", "POST", "/api/v1/payouts/never-requested/settle", None, 404),
    ("finance", "POST", "/api/v1/settlement-runs", {"run_id": "r", "as_of": 253402300799999}, 400),
    ("auditor", "GET", "/api/v1/audit/entries", None, 400),
    ("auditor", "GET", "/api/v1/audit/verify?expect_head=xyz", None, 422),
    ("publisher", "POST", "/api/v1/events", {"type": "order_placed"}, 422),
    ("publisher", "POST", "/api/v1/events", [1, 2], 422),
]


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("api") / "ledger.sqlite"
    small_ledger(path).dispose()
    return path


@pytest.fixture
def client(ledger_path, tmp_path):
    copy = tmp_path / "ledger.sqlite"
    copy.write_bytes(ledger_path.read_bytes())  # each test changes its own copy
    from ledger.store.opening import open_store

    with TestClient(create_app(open_store(f"sqlite:///{copy}"), token_book())) as test_client:
        yield test_client


def _call(http, method, path, body=None, headers=None):
    return http.request(method, path, json=body, headers=headers or {})


def _check_roles(http) -> None:
    for method, path, body, allowed in ENDPOINTS:
        missing = _call(http, method, path, body)
        assert missing.status_code == 401, (path, missing.text)
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = _call(http, method, path, body, {"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401, (path, wrong.text)
        for role in ("publisher", "finance", "auditor", "sharer"):
            response = _call(http, method, path, body, auth(role))
            if role in allowed:
                assert response.status_code not in (401, 403, 500), (role, path, response.text)
            else:
                assert response.status_code == 403, (role, path, response.text)
                assert role in response.json()["detail"]


def _check_bad_input(http) -> None:
    for role, method, path, body, status in BAD:
        response = _call(http, method, path, body, auth(role))
        assert response.status_code == status, (path, body, response.text)
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_roles_through_the_test_client(client) -> None:
    _check_roles(client)


def test_bad_input_gets_a_4xx_with_a_message(client) -> None:
    _check_bad_input(client)


def test_finance_commands_become_events_and_move_money(client) -> None:
    F = auth("finance")
    top = max(
        client.get("/api/v1/balances?limit=1000", headers=F).json()["items"],
        key=lambda b: b["available"],
    )
    sharer, currency, amount = top["sharer_id"], top["currency"], top["available"]
    request = {"payout_id": "p-1", "sharer_id": sharer, "amount": amount, "currency": currency}
    first = client.post("/api/v1/payouts", headers=F, json=request)
    assert first.json() == {
        "event_id": "payout-requested:p-1",
        "outcome": "applied",
        "reason": None,
        "message": None,
    }
    retry = client.post("/api/v1/payouts", headers=F, json=request)  # the first outcome again
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    after = client.get(
        f"/api/v1/balances?sharer_id={sharer}&currency={currency}", headers=F
    ).json()["items"][0]
    assert (after["available"], after["inflight"]) == (0, top["inflight"] + amount)
    assert client.post("/api/v1/payouts/p-1/settle", headers=F).json()["outcome"] == "applied"
    paid = client.get(f"/api/v1/balances?sharer_id={sharer}&currency={currency}", headers=F).json()[
        "items"
    ][0]
    assert paid["paid"] == top["paid"] + amount
    again = client.post("/api/v1/payouts", headers=F, json={**request, "payout_id": "p-2"})
    assert again.status_code == 409
    assert again.json()["reason"] == "insufficient_available"
    dead = client.get("/api/v1/dead-letters?reason=insufficient_available", headers=F).json()
    ours = [d["event_id"] for d in dead["items"] if d["event_id"].startswith("payout-requested")]
    assert ours == ["payout-requested:p-2"]
    entries = client.get(
        "/api/v1/audit/entries?event_id=payout-requested:p-1", headers=auth("auditor")
    ).json()["items"]
    assert [(e["kind"], e["rule"]) for e in entries] == [("payout_requested", "payout-request/v1")]
    run = client.post("/api/v1/settlement-runs", headers=F, json={"run_id": "r-api"})
    assert run.json()["outcome"] == "applied"


def test_lists_are_paginated(client) -> None:
    F = auth("finance")
    everything = client.get("/api/v1/balances?limit=1000", headers=F).json()
    assert everything["next_cursor"] is None and len(everything["items"]) > 5
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/balances",
            headers=F,
            params={"limit": 4, **({"cursor": cursor} if cursor else {})},
        ).json()
        assert len(page["items"]) <= 4
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything["items"]


def test_provenance_names_plan_rule_and_level(client) -> None:
    order = client.get("/api/v1/orders/ord-000001/payouts", headers=auth("finance")).json()
    entries = client.get(
        "/api/v1/audit/entries?order_id=ord-000001", headers=auth("auditor")
    ).json()["items"]
    accrual = next(e for e in entries if e["kind"] == "accrual")
    assert accrual["plan_id"] == order["plan_id"] and accrual["rule"] == "accrual/v1"
    levels = {
        p["account"].split(":")[1]: p["level"]
        for p in accrual["postings"]
        if p["account"].startswith("sharer:")
    }
    assert levels == {lv["sharer_id"]: lv["level"] for lv in order["levels"] if lv["accrued"]}


def test_openapi_is_served(client) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {
        "/api/v1/balances",
        "/api/v1/payouts",
        "/api/v1/audit/entries",
        "/api/v1/events",
    } <= set(spec["paths"])


@pytest.fixture
def served(ledger_path, tmp_path):
    """A real ``ledger serve`` on loopback over a copy of the ledger; yields its base URL."""
    copy = tmp_path / "served.sqlite"
    copy.write_bytes(ledger_path.read_bytes())
    with serving(copy) as base:
        yield base


def test_a_real_server_on_loopback(served) -> None:
    with httpx.Client(base_url=served, timeout=10) as http:
        assert http.get("/openapi.json").json()["info"]["title"] == "Commission ledger"
        _check_roles(http)
        _check_bad_input(http)
