"""Commands: a failure never looks like a success (SPEC §4.7). A command's id
is its idempotency key: the same request again answers the first outcome (a rejection
stays a rejection), another request under the same id is a 409 conflict, and a request
refused for its input (422) spends nothing, so the corrected request can follow."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.api.app import create_app
from ledger.api.models import COMMAND_ID_MAX
from ledger.domain import validation as rules
from ledger.domain.events import ClickRecorded, SharerEnrolled
from ledger.store.opening import open_store
from tests.support import reads as queries
from tests.support.api import (
    DAY,
    PLAN,
    auth,
    balance,
    build_world,
    built_world,
    client_on_copy,
    ledger_counts,
    now_ms,
    publish,
    token_book,
)

F = auth("finance")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, int]:
    """A ledger built through the API (tests/support/api.py build_world), and its 'now'."""
    return built_world(tmp_path_factory.mktemp("idempotency"))


@pytest.fixture
def client(world, tmp_path) -> Iterator[TestClient]:
    with client_on_copy(world[0], tmp_path) as http:
        yield http


def _payout(payout_id: str, amount: int, sharer_id: str = "u2") -> dict[str, object]:
    return {"payout_id": payout_id, "sharer_id": sharer_id, "amount": amount, "currency": "CNY"}


def test_a_retried_rejected_payout_stays_rejected(client) -> None:
    """Retrying a payout that got 409 insufficient_available answered 200 "duplicate"."""
    store = client.app.state.store
    too_much = _payout("po-big", balance(client, "u2")["available"] + 1)
    first = client.post("/api/v1/payouts", headers=F, json=too_much)
    assert first.status_code == 409 and first.json()["reason"] == "insufficient_available"
    before = ledger_counts(store)
    for _ in range(2):
        again = client.post("/api/v1/payouts", headers=F, json=too_much)
        assert again.status_code == 409, again.text
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
    assert ledger_counts(store) == before


def test_a_retried_applied_payout_answers_applied_and_moves_nothing_more(client) -> None:
    start = balance(client, "u2")
    first = client.post("/api/v1/payouts", headers=F, json=_payout("po-1", 300))
    assert first.status_code == 200 and first.json()["outcome"] == "applied"
    again = client.post("/api/v1/payouts", headers=F, json=_payout("po-1", 300))
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert balance(client, "u2")["inflight"] == start["inflight"] + 300


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (_payout("po-1", 301), "amount"),
        (_payout("po-1", 300, sharer_id="u1"), "sharer_id"),
        ({**_payout("po-1", 300), "currency": "USD"}, "currency"),
    ],
)
def test_the_same_payout_id_for_another_request_is_a_conflict(client, other, field) -> None:
    """The same payout_id with another sharer or amount answered 200."""
    store = client.app.state.store
    assert client.post("/api/v1/payouts", headers=F, json=_payout("po-1", 300)).status_code == 200
    before, start = ledger_counts(store), balance(client, "u2")
    conflict = client.post("/api/v1/payouts", headers=F, json=other)
    assert conflict.status_code == 409, conflict.text
    body = conflict.json()
    assert (body["outcome"], body["reason"]) == ("conflict", "idempotency_key_reused")
    assert "payout-requested:po-1" in body["message"] and field in body["message"]
    assert "u2" not in body["message"]  # names what differs, shows nothing of the first
    assert ledger_counts(store) == before and balance(client, "u2") == start


def test_a_conflict_after_a_rejection_is_still_a_conflict(client) -> None:
    too_much = _payout("po-big", 10**12)
    assert client.post("/api/v1/payouts", headers=F, json=too_much).status_code == 409
    other = client.post("/api/v1/payouts", headers=F, json=_payout("po-big", 5))
    assert other.status_code == 409 and other.json()["outcome"] == "conflict"


def test_settlement_runs_compare_what_was_asked(client, world) -> None:
    _, now = world
    first = client.post(
        "/api/v1/settlement-runs", headers=F, json={"run_id": "r-1", "as_of": now - DAY}
    )
    assert first.json()["outcome"] == "applied"
    same = client.post(
        "/api/v1/settlement-runs", headers=F, json={"run_id": "r-1", "as_of": now - DAY}
    )
    assert same.status_code == 200 and same.json() == first.json()
    other = client.post(
        "/api/v1/settlement-runs", headers=F, json={"run_id": "r-1", "as_of": now - 2 * DAY}
    )
    assert other.status_code == 409 and other.json()["reason"] == "idempotency_key_reused"
    # without as_of a run means "as of now": a retry later asks for the same run
    now_run = client.post("/api/v1/settlement-runs", headers=F, json={"run_id": "r-2"})
    retry = client.post("/api/v1/settlement-runs", headers=F, json={"run_id": "r-2"})
    assert now_run.json()["outcome"] == "applied" and retry.json() == now_run.json()
    pinned = client.post("/api/v1/settlement-runs", headers=F, json={"run_id": "r-2", "as_of": 0})
    assert pinned.status_code == 409 and pinned.json()["outcome"] == "conflict"


def test_plans_are_commands_too(client, world) -> None:
    _, now = world
    plan = {**PLAN, "plan_id": "plan-2", "effective_from": now + DAY}
    first = client.post("/api/v1/plans", headers=F, json=plan)
    assert first.json() == {
        "event_id": "plan-published:plan-2",
        "outcome": "applied",
        "reason": None,
        "message": None,
    }
    assert client.post("/api/v1/plans", headers=F, json=plan).json() == first.json()
    other = client.post("/api/v1/plans", headers=F, json={**plan, "frozen_days": 0})
    assert other.status_code == 409 and "frozen_days" in other.json()["message"]


def test_a_failure_reason_over_the_rules_limit_spends_nothing(client) -> None:
    """A 500-character failure reason was accepted, rejected by the rules, and used up
    payout-failed:{id}: every retry answered "duplicate" and 150 stayed in flight."""
    store = client.app.state.store
    assert client.post("/api/v1/payouts", headers=F, json=_payout("po-150", 150)).status_code == 200
    start = balance(client, "u2")
    before = ledger_counts(store)
    for reason in ("x" * 500, "x" * (rules.MAX_TEXT + 1), "line\nbreak", "", "\u2028"):
        refused = client.post("/api/v1/payouts/po-150/fail", headers=F, json={"reason": reason})
        assert refused.status_code == 422, (reason, refused.text)
    assert ledger_counts(store) == before
    assert queries.logged_outcome(store, "payout-failed:po-150") is None
    ok = client.post(
        "/api/v1/payouts/po-150/fail", headers=F, json={"reason": "x" * rules.MAX_TEXT}
    )
    assert ok.status_code == 200 and ok.json()["outcome"] == "applied", ok.text
    after = balance(client, "u2")
    assert (after["inflight"], after["available"]) == (
        start["inflight"] - 150,
        start["available"] + 150,
    )


@pytest.mark.parametrize(
    "bad",
    [
        _payout("no\xa0break", 5),  # not printable: the rules refuse it (invalid_value)
        _payout("p" * (COMMAND_ID_MAX + 1), 5),  # its event id would exceed MAX_ID
        _payout("po-x", rules.MAX_AMOUNT + 1),
        _payout("po-x", 5, sharer_id="s" * (rules.MAX_ID + 1)),
        {**_payout("po-x", 5), "currency": "cny"},
    ],
)
def test_a_command_refused_for_its_input_leaves_the_id_unused(client, bad) -> None:
    store = client.app.state.store
    before = ledger_counts(store)
    refused = client.post("/api/v1/payouts", headers=F, json=bad)
    assert refused.status_code == 422 and refused.json()["detail"], refused.text
    assert ledger_counts(store) == before


def test_the_longest_command_id_fits_its_event_id(client) -> None:
    payout_id = "p" * COMMAND_ID_MAX
    ok = client.post("/api/v1/payouts", headers=F, json=_payout(payout_id, 5))
    assert ok.status_code in (200, 409) and ok.json()["outcome"] in ("applied", "rejected")
    assert len(ok.json()["event_id"]) <= rules.MAX_ID
    settled = client.post(f"/api/v1/payouts/{payout_id}/settle", headers=F)
    assert settled.status_code in (200, 409) and settled.json()["event_id"].endswith(payout_id)


def test_concurrent_retries_all_answer_the_first_outcome(client) -> None:
    """Eight identical requests at once: one is applied, every answer says so (none says
    "duplicate"), and the amount moves once."""
    start = balance(client, "u2")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: client.post("/api/v1/payouts", headers=F, json=_payout("po-race", 200)),
                range(8),
            )
        )
    assert {(a.status_code, a.json()["outcome"]) for a in answers} == {(200, "applied")}
    assert balance(client, "u2")["inflight"] == start["inflight"] + 200


def test_published_events_keep_the_same_promise(client, world) -> None:
    """POST /events: the same event again answers its first outcome; another event under
    the same event id is a conflict; an event refused for its input (422) spends nothing."""
    _, now = world
    store = client.app.state.store
    click = ClickRecorded(
        "ev-click-x", now, "clicks", click_id="cx", sharer_id="u1", buyer_id="b5", product_id="p"
    )
    first = publish(client, click)
    assert first.json()["outcome"] == "applied"
    assert publish(client, click).json() == first.json()
    other = publish(
        client,
        ClickRecorded(
            "ev-click-x",
            now,
            "clicks",
            click_id="cy",
            sharer_id="u1",
            buyer_id="b5",
            product_id="p",
        ),
    )
    assert other.status_code == 409 and other.json()["reason"] == "idempotency_key_reused"
    before = ledger_counts(store)
    unprintable = SharerEnrolled("ev-u7", now, "users", sharer_id="u7\u2028")
    assert publish(client, unprintable).status_code == 422
    assert ledger_counts(store) == before
    fixed = publish(client, SharerEnrolled("ev-u7", now, "users", sharer_id="u7"))
    assert fixed.json()["outcome"] == "applied", fixed.text


def test_concurrent_retries_on_postgresql(fresh_pg_url) -> None:
    """The same on PostgreSQL, where the requests really run at once (the losers meet a
    duplicate key and are answered from the event log)."""
    store = open_store(fresh_pg_url)
    with TestClient(create_app(store, token_book())) as http:
        build_world(http, now_ms())
        start = balance(http, "u2")
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda n: http.post(
                        "/api/v1/payouts", headers=F, json=_payout("po-race", 200 + n % 2)
                    ),
                    range(8),
                )
            )
        by_amount: dict[int, set[tuple[int, str]]] = {200: set(), 201: set()}
        for n, answer in enumerate(answers):
            by_amount[200 + n % 2].add((answer.status_code, answer.json()["outcome"]))
        # one body wins: its four copies answer applied, the other body's four a conflict
        assert sorted(by_amount.values(), key=sorted) == [{(200, "applied")}, {(409, "conflict")}]
        won = next(amount for amount, seen in by_amount.items() if seen == {(200, "applied")})
        assert balance(http, "u2")["inflight"] == start["inflight"] + won
    store.dispose()


@pytest.fixture(scope="module")
def shared_client(world, tmp_path_factory) -> Iterator[TestClient]:
    """One client for a property test's examples (hypothesis runs them in one test)."""
    path, _ = world
    copy = tmp_path_factory.mktemp("property") / "ledger.sqlite"
    copy.write_bytes(path.read_bytes())
    store = open_store(f"sqlite:///{copy}")
    with TestClient(create_app(store, token_book())) as http:
        yield http
    store.dispose()


texts = st.text(st.characters(codec="utf-8"), min_size=0, max_size=12) | st.sampled_from(
    ["u2", "u1", "x" * 184, "x" * 183, "x" * 201, "tab\there", "nbsp\xa0", "\u2028"]
)


@given(
    payout_id=texts,
    sharer_id=texts,
    amount=st.integers(-5, 10**16) | st.sampled_from([1, 100, rules.MAX_AMOUNT]),
    currency=st.sampled_from(["CNY", "USD", "cny", "CN", "€€€"]),
    reason=st.none() | texts,
)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_input_the_rules_refuse_is_a_422_that_spends_no_id(
    shared_client, payout_id, sharer_id, amount, currency, reason
) -> None:
    """Whatever the input, a command is 422 with nothing written, or reaches the rules
    and is never dead-lettered invalid_value (which would spend its id for nothing)."""
    store = shared_client.app.state.store
    body = {"payout_id": payout_id, "sharer_id": sharer_id, "amount": amount, "currency": currency}
    for path, json in (
        ("/api/v1/payouts", body),
        ("/api/v1/payouts/po-setup/fail", {"reason": reason}),
    ):
        before = ledger_counts(store)
        answer = shared_client.post(path, headers=F, json=json)
        assert answer.status_code in (200, 409, 422), answer.text
        if answer.status_code == 422:
            assert ledger_counts(store) == before
        else:
            assert answer.json()["reason"] != "invalid_value", answer.text
            assert queries.logged_outcome(store, answer.json()["event_id"]) is not None
