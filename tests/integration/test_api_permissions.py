"""Least authority through the API (SPEC §4.7, ledger/domain/permissions.py): every cell of
role × event type, allowed and refused, on a ledger built through the API itself. An
allowed cell is applied; a refused one answers 403 naming the role, the type and who may
submit it, and leaves the ledger as it was (no event logged, no entry, no dead letter).
Also the issue's attacks: a publisher paying out 4,600 CNY, a publisher settlement run
dated 2099, a publisher squatting finance's command ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.domain.events import (
    EVENT_TYPES,
    ClickRecorded,
    Event,
    MinPayout,
    OrderCompleted,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    PlanPublished,
    RefundIssued,
    RefundLine,
    SettlementRun,
    SharerEnrolled,
)
from ledger.domain.permissions import COMMAND_ID_PREFIXES, WRITER, may_submit
from tests.support import reads as queries
from tests.support.api import (
    DAY,
    PLAN,
    auth,
    balance,
    built_world,
    client_on_copy,
    event_json,
    ledger_counts,
    order,
    publish,
)

ROLES = ("publisher", "finance", "auditor")
YEAR_2099 = 4_070_908_800_000  # 2099-01-01T00:00:00Z


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, int]:
    """A ledger built through the API (tests/support/api.py build_world), and its 'now'."""
    return built_world(tmp_path_factory.mktemp("permissions"))


@pytest.fixture
def client(world, tmp_path) -> Iterator[TestClient]:
    with client_on_copy(world[0], tmp_path) as http:
        yield http


# One event of each type, as a publisher-style JSON event (what POST /events would take).
def the_event(event_type: str, now: int) -> Event:
    examples: dict[str, Event] = {
        "sharer_enrolled": SharerEnrolled("ev-u9", now, "users", sharer_id="u9", upline_id="u2"),
        "click_recorded": ClickRecorded(
            "ev-c9", now, "clicks", click_id="c9", sharer_id="u1", buyer_id="b2", product_id="p"
        ),
        "order_placed": order("o-9", now, sharer_click=None, amount=1000),
        "order_completed": OrderCompleted(
            "ev-o-open-done", now, "shop", order_id="o-open", buyer_id="b1"
        ),
        "refund_issued": RefundIssued(
            "ev-rf1",
            now,
            "refunds",
            refund_id="rf1",
            order_id="o-old",
            buyer_id="b1",
            lines=(RefundLine("l1", 10_000),),
        ),
        "plan_published": PlanPublished(
            "ev-plan-2",
            now,
            "finance",
            plan_id="plan-2",
            effective_from=now + DAY,
            default_rate_bps=9000,
            platform_fee_bps=0,
            level_shares_bps=(10_000, 0, 0),
            frozen_days=0,
            attribution_window_days=30,
            self_purchase_allowed=True,
            min_payouts=(MinPayout("CNY", 1),),
        ),
        "settlement_run": SettlementRun("ev-run-9", now, "finance", run_id="r-9", as_of=now),
        "payout_requested": PayoutRequested(
            "ev-po-9", now, "finance", payout_id="po-9", sharer_id="u2", amount=500, currency="CNY"
        ),
        "payout_settled": PayoutSettled(
            "ev-pos",
            now,
            "finance",
            payout_id="po-setup",
            sharer_id="u2",
            amount=1000,
            currency="CNY",
        ),
        "payout_failed": PayoutFailed(
            "ev-pof",
            now,
            "finance",
            payout_id="po-setup",
            sharer_id="u2",
            amount=1000,
            currency="CNY",
        ),
    }
    return examples[event_type]


# finance's one way to submit each of its types: (method path, body) -> the event id it logs
COMMANDS: dict[str, Callable[[int], tuple[str, Any, str]]] = {
    "plan_published": lambda now: (
        "/api/v1/plans",
        {**PLAN, "plan_id": "plan-2", "effective_from": now + DAY},
        "plan-published:plan-2",
    ),
    "settlement_run": lambda now: (
        "/api/v1/settlement-runs",
        {"run_id": "r-9"},
        "settlement-run:r-9",
    ),
    "payout_requested": lambda now: (
        "/api/v1/payouts",
        {"payout_id": "po-9", "sharer_id": "u2", "amount": 500, "currency": "CNY"},
        "payout-requested:po-9",
    ),
    "payout_settled": lambda now: (
        "/api/v1/payouts/po-setup/settle",
        None,
        "payout-settled:po-setup",
    ),
    "payout_failed": lambda now: (
        "/api/v1/payouts/po-setup/fail",
        {"reason": "the bank refused it"},
        "payout-failed:po-setup",
    ),
}


def test_the_table_covers_every_type_with_one_writer() -> None:
    assert set(WRITER) == set(EVENT_TYPES) and set(COMMANDS) == {
        t for t, writer in WRITER.items() if writer == "finance"
    }


def _refused(response: Any, role: str, event_type: str) -> None:
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert role in detail and event_type in detail and WRITER[event_type] in detail, detail


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@pytest.mark.parametrize("role", ROLES)
def test_every_cell_of_role_by_event_type(client, world, role, event_type) -> None:
    _, now = world
    store = client.app.state.store
    event = the_event(event_type, now)
    before = ledger_counts(store)
    command = COMMANDS.get(event_type)

    if may_submit(role, event_type) and command is None:  # publishers: POST /events
        response = publish(client, event, role)
        assert response.status_code == 200 and response.json()["outcome"] == "applied", (
            response.text
        )
        logged = queries.logged_outcome(store, event.event_id)
        assert logged is not None and logged.outcome == "applied"
        assert ledger_counts(store)["events"] == before["events"] + 1
        return

    if may_submit(role, event_type):  # finance: its command, and not POST /events
        assert command is not None
        path, body, event_id = command(now)
        direct = publish(client, event, role)
        assert direct.status_code == 403 and event_type in direct.json()["detail"]
        assert ledger_counts(store) == before  # the refused way changed nothing
        response = client.post(path, headers=auth(role), json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "event_id": event_id,
            "outcome": "applied",
            "reason": None,
            "message": None,
        }
        logged = queries.logged_outcome(store, event_id)
        assert logged is not None and logged.outcome == "applied"
        assert ledger_counts(store)["events"] == before["events"] + 1
        return

    # refused: through POST /events, and through the type's command when it has one
    _refused(publish(client, event, role), role, event_type)
    if command is not None:
        path, body, event_id = command(now)
        _refused(client.post(path, headers=auth(role), json=body), role, event_type)
        assert queries.logged_outcome(store, event_id) is None
    assert queries.logged_outcome(store, event.event_id) is None
    assert ledger_counts(store) == before


def test_a_publisher_cannot_pay_out_4600_cny(client, world) -> None:
    """The issue's attack: payout_requested + payout_settled for 4,600 CNY from a publisher
    token were both applied (the sharer showed paid 4600)."""
    _, now = world
    store = client.app.state.store
    finance = auth("finance")
    client.post(  # make sure the sharer has the 4,600 the attacker wants to move
        "/api/v1/payouts/po-setup/fail", headers=finance, json={"reason": "make room"}
    )
    start = balance(client, "u2")
    assert start["available"] >= 4600, start
    before = ledger_counts(store)
    common = {"payout_id": "po-evil", "sharer_id": "u2", "amount": 4600, "currency": "CNY"}
    requested = publish(client, PayoutRequested("ev-evil-1", now, "attacker", **common))
    settled = publish(client, PayoutSettled("ev-evil-2", now + 1, "attacker", **common))
    for response, event_type in ((requested, "payout_requested"), (settled, "payout_settled")):
        _refused(response, "publisher", event_type)
    assert ledger_counts(store) == before
    assert balance(client, "u2") == start and start["paid"] == 0


def test_a_publisher_settlement_run_dated_2099_releases_nothing(client, world) -> None:
    """The issue's attack: a publisher settlement_run dated 2099 released an order completed
    30 minutes earlier (frozen 7 days), while finance's own endpoint refuses that as_of."""
    _, now = world
    store = client.app.state.store
    start = balance(client, "u2")
    fresh = client.get("/api/v1/orders/o-fresh/payouts", headers=auth("finance")).json()
    assert {level["state"] for level in fresh["levels"]} == {"pending"}
    before = ledger_counts(store)
    run = SettlementRun("ev-run-2099", now, "attacker", run_id="r-2099", as_of=YEAR_2099)
    _refused(publish(client, run, "publisher"), "publisher", "settlement_run")
    finance_2099 = client.post(
        "/api/v1/settlement-runs",
        headers=auth("finance"),
        json={"run_id": "r-2099", "as_of": YEAR_2099},
    )
    assert finance_2099.status_code == 400
    assert ledger_counts(store) == before
    assert balance(client, "u2") == start
    # finance's run now leaves the 30-minute-old completion frozen
    assert (
        client.post(
            "/api/v1/settlement-runs", headers=auth("finance"), json={"run_id": "r-now"}
        ).json()["outcome"]
        == "applied"
    )
    after = client.get("/api/v1/orders/o-fresh/payouts", headers=auth("finance")).json()
    assert {level["state"] for level in after["levels"]} == {"pending"}


@pytest.mark.parametrize("prefix", COMMAND_ID_PREFIXES)
def test_a_publisher_cannot_squat_finance_command_ids(client, world, prefix) -> None:
    """A click with event id ``payout-requested:po-9`` made finance's later POST /payouts
    for po-9 answer 200 "duplicate" with nothing moved."""
    _, now = world
    store = client.app.state.store
    before = ledger_counts(store)
    click = ClickRecorded(
        f"{prefix}po-9",
        now,
        "clicks",
        click_id="c-squat",
        sharer_id="u1",
        buyer_id="b9",
        product_id="p",
    )
    squat = publish(client, click)
    assert squat.status_code == 403 and "command id" in squat.json()["detail"], squat.text
    assert ledger_counts(store) == before
    if prefix == "payout-requested:":
        start = balance(client, "u2")
        paid = client.post(
            "/api/v1/payouts",
            headers=auth("finance"),
            json={"payout_id": "po-9", "sharer_id": "u2", "amount": 500, "currency": "CNY"},
        )
        assert paid.json()["outcome"] == "applied", paid.text
        assert balance(client, "u2")["inflight"] == start["inflight"] + 500


def test_events_refuses_a_body_that_is_not_an_event(client) -> None:
    for body in ([1, 2], {"type": "nope"}, {"type": 5}, "text"):
        response = client.post("/api/v1/events", headers=auth("publisher"), json=body)
        assert response.status_code == 422, (body, response.text)
    # the other roles are refused before their body is even read
    for role in ("finance", "auditor"):
        response = client.post("/api/v1/events", headers=auth(role), json=[1, 2])
        assert response.status_code == 403 and role in response.json()["detail"]


def test_the_json_form_of_the_examples_is_what_publishers_send(world) -> None:
    _, now = world
    for event_type in EVENT_TYPES:
        assert event_json(the_event(event_type, now))["type"] == event_type
