"""Dead-letter redrive through the API (docs/decisions/0011-dead-letter-redrive.md), on a
ledger built through the API itself: finance corrects a dead letter and resubmits it as a
new event ``redrive:<key>`` linked to it; the original stays byte-equal; a second redrive
answers the first (same content) or is refused (other content); only finance redrives;
a publisher cannot forge a redrive id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledger.service import LedgerService, Undecodable
from ledger.store import tables as t
from tests.support.api import (
    DAY,
    auth,
    balance,
    built_world,
    client_on_copy,
    event_json,
    ledger_counts,
    publish,
    reused_order,
    typo_refund,
)

F = auth("finance")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, int]:
    return built_world(tmp_path_factory.mktemp("redrive"))


@pytest.fixture
def client(world, tmp_path) -> Iterator[TestClient]:
    with client_on_copy(world[0], tmp_path) as http:
        yield http


def dead_letter_of(client: TestClient, event_id: str) -> dict[str, Any]:
    items = client.get("/api/v1/dead-letters?limit=1000", headers=F).json()["items"]
    [found] = [d for d in items if d["event_id"] == event_id]
    return found


def raw_row(client: TestClient, dead_id: int) -> tuple[Any, ...]:
    with client.app.state.store.read() as conn:
        row = conn.execute(select(t.dead_letters).where(t.dead_letters.c.id == dead_id)).one()
    return tuple(row)


def redrive(client: TestClient, dead_id: int, event: dict[str, Any], role: str = "finance"):
    return client.post(
        f"/api/v1/dead-letters/{dead_id}/redrive", headers=auth(role), json={"event": event}
    )


def corrected(event: Any, **changes: Any) -> dict[str, Any]:
    form = event_json(event)
    del form["event_id"], form["producer"]
    return {**form, **changes}


def test_a_typod_refund_is_corrected_and_applied_with_the_original_kept(client, world) -> None:
    _, now = world
    rejected = publish(client, typo_refund(now))
    assert rejected.status_code == 409 and rejected.json()["reason"] == "unknown_line"
    dead = dead_letter_of(client, "ev-refund-typo")
    assert dead["redriven"] is None and dead["redrive_of"] is None
    before_row = raw_row(client, dead["id"])
    start = balance(client, "u2")

    fixed = corrected(typo_refund(now), lines=[{"line_id": "l1", "amount": 40_000}])
    answer = redrive(client, dead["id"], fixed)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"] == "applied" and body["event_id"] == f"redrive:{dead['key']}"
    assert body["redrive_of"] == dead["key"]
    assert body["changes"] == [
        {"op": "replace", "path": "/lines/0/line_id", "before": "lI", "after": "l1"}
    ]
    # the refund reversed commission: u2's available balance went down
    assert balance(client, "u2")["available"] < start["available"]
    # the original dead letter is untouched, and shows its redrive
    assert raw_row(client, dead["id"]) == before_row
    detail = client.get(f"/api/v1/dead-letters/{dead['id']}", headers=auth("auditor")).json()
    assert {k: detail[k] for k in ("payload", "reason", "message", "source")} == {
        k: dead[k] for k in ("payload", "reason", "message", "source")
    }
    redrive_row = detail["redrive"]
    assert redrive_row["event_id"] == body["event_id"] and redrive_row["outcome"] == "applied"
    assert redrive_row["by"] == "finance:" + _finance_hash()[:8]  # an unnamed token
    assert redrive_row["redrive_of"] == dead["key"] and redrive_row["reason"] is None
    assert redrive_row["changes"] == body["changes"]
    assert redrive_row["at"] >= now
    assert detail["redriven"] == {"event_id": body["event_id"], "outcome": "applied"}
    # the list: the redrive column, and what is left to correct
    assert dead_letter_of(client, "ev-refund-typo")["redriven"] == detail["redriven"]
    left = client.get("/api/v1/dead-letters?redriven=false", headers=F).json()["items"]
    done = client.get("/api/v1/dead-letters?redriven=true", headers=F).json()["items"]
    assert dead["id"] not in [d["id"] for d in left]
    assert [d["id"] for d in done] == [dead["id"]]
    # the download spells the redrive in one cell
    csv = client.get("/api/v1/downloads/dead-letters.csv", headers=F).content.decode("utf-8-sig")
    assert f"applied {body['event_id']}" in csv


def test_a_reused_order_id_is_redriven_as_its_own_order_with_commission(client, world) -> None:
    _, now = world
    assert publish(client, reused_order(now)).json()["reason"] == "duplicate_order_id"
    dead = dead_letter_of(client, "ev-o-late")
    answer = redrive(client, dead["id"], corrected(reused_order(now), order_id="o-late"))
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
    assert answer.json()["changes"] == [
        {"op": "replace", "path": "/order_id", "before": "o-old", "after": "o-late"}
    ]
    story = client.get("/api/v1/orders/o-late/payouts", headers=F).json()
    # 60,000 at 25 % merchant rate, 8 % platform fee: the 50/30/20 pool is paid pending
    assert sum(level["amount"] for level in story["levels"]) > 0
    assert {level["state"] for level in story["levels"]} == {"pending"}
    # the order's story shows its accrual came from the redrive of that dead letter
    entries = client.get("/api/v1/orders/o-late", headers=F).json()["entries"]
    assert entries and {e["redrive_of"] for e in entries} == {dead["key"]}
    audit = client.get(
        "/api/v1/audit/entries", params={"order_id": "o-late"}, headers=auth("auditor")
    ).json()["items"]
    assert {e["redrive_of"] for e in audit} == {dead["key"]}
    # occurred_at defaulted to the original's business time
    detail = client.get(f"/api/v1/dead-letters/{dead['id']}", headers=F).json()
    assert "/occurred_at" not in [c["path"] for c in detail["redrive"]["changes"]]


def test_a_second_redrive_answers_the_first_or_is_refused(client, world) -> None:
    _, now = world
    publish(client, typo_refund(now))
    dead = dead_letter_of(client, "ev-refund-typo")
    fixed = corrected(typo_refund(now), lines=[{"line_id": "l1", "amount": 40_000}])
    first = redrive(client, dead["id"], fixed)
    counts = ledger_counts(client.app.state.store)
    again = redrive(client, dead["id"], fixed)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = redrive(client, dead["id"], {**fixed, "lines": [{"line_id": "l1", "amount": 1}]})
    assert other.status_code == 409, other.text
    assert other.json()["reason"] == "idempotency_key_reused"
    assert "already redriven as redrive:" in other.json()["message"]
    assert ledger_counts(client.app.state.store) == counts


def test_a_rejected_redrive_is_a_dead_letter_that_can_be_redriven(client, world) -> None:
    """A chain: the first correction is still wrong (over_refund), so it is a dead letter
    of its own, linked to the first by redrive_of; its redrive is applied."""
    _, now = world
    publish(client, typo_refund(now))
    first_dead = dead_letter_of(client, "ev-refund-typo")
    too_much = corrected(typo_refund(now), lines=[{"line_id": "l1", "amount": 999_999}])
    answer = redrive(client, first_dead["id"], too_much)
    assert answer.status_code == 409 and answer.json()["outcome"] == "rejected", answer.text
    second_dead = dead_letter_of(client, answer.json()["event_id"])
    assert second_dead["redrive_of"] == first_dead["key"]
    assert dead_letter_of(client, "ev-refund-typo")["redriven"]["outcome"] == "rejected"
    fixed = corrected(typo_refund(now), lines=[{"line_id": "l1", "amount": 40_000}])
    final = redrive(client, second_dead["id"], fixed)
    assert final.status_code == 200 and final.json()["outcome"] == "applied", final.text
    assert final.json()["redrive_of"] == second_dead["key"]
    detail = client.get(f"/api/v1/dead-letters/{first_dead['id']}", headers=F).json()
    assert detail["redrive"]["outcome"] == "rejected"
    assert detail["redrive"]["reason"] == "over_refund"


@pytest.mark.parametrize("role", ["auditor", "publisher", "sharer"])
def test_only_finance_redrives(client, world, role) -> None:
    _, now = world
    publish(client, typo_refund(now))
    dead = dead_letter_of(client, "ev-refund-typo")
    counts = ledger_counts(client.app.state.store)
    fixed = corrected(typo_refund(now), lines=[{"line_id": "l1", "amount": 40_000}])
    refused = redrive(client, dead["id"], fixed, role=role)
    assert refused.status_code == 403, refused.text
    assert ledger_counts(client.app.state.store) == counts
    reading = client.get(f"/api/v1/dead-letters/{dead['id']}", headers=auth(role))
    assert reading.status_code == (200 if role == "auditor" else 403)


def test_a_publisher_cannot_forge_a_redrive_id(client, world) -> None:
    _, now = world
    publish(client, typo_refund(now))
    dead = dead_letter_of(client, "ev-refund-typo")
    counts = ledger_counts(client.app.state.store)
    forged = event_json(typo_refund(now))
    forged["event_id"] = f"redrive:{dead['key']}"
    forged["lines"] = [{"line_id": "l1", "amount": 40_000}]
    refused = client.post("/api/v1/events", headers=auth("publisher"), json=forged)
    assert refused.status_code == 403 and "command id space" in refused.json()["detail"]
    assert ledger_counts(client.app.state.store) == counts
    detail = client.get(f"/api/v1/dead-letters/{dead['id']}", headers=F).json()
    assert detail["redrive"] is None


def test_bad_redrives_are_clear_4xx_and_spend_nothing(client, world) -> None:
    _, now = world
    publish(client, typo_refund(now))
    dead = dead_letter_of(client, "ev-refund-typo")
    fixed = corrected(typo_refund(now), lines=[{"line_id": "l1", "amount": 40_000}])
    counts = ledger_counts(client.app.state.store)
    cases = [
        (10**9, fixed, 404),
        (dead["id"], {**fixed, "event_id": "mine"}, 422),
        (dead["id"], {**fixed, "producer": "someone"}, 422),
        (dead["id"], {**fixed, "type": "payout_settled"}, 422),
        (dead["id"], {**fixed, "type": "nope"}, 422),
        (dead["id"], {**fixed, "lines": "l1"}, 422),
        (dead["id"], {**fixed, "occurred_at": "yesterday"}, 422),
        (dead["id"], {**fixed, "lines": [{"line_id": "l1", "amount": "5"}]}, 422),
    ]
    for dead_id, event, status in cases:
        answer = redrive(client, dead_id, event)
        assert answer.status_code == status, (event, answer.text)
        assert answer.json()["detail"]
    for body in ({}, {"event": [1]}, {"event": fixed, "more": 1}, []):
        answer = client.post(f"/api/v1/dead-letters/{dead['id']}/redrive", headers=F, json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert client.get("/api/v1/dead-letters/0", headers=F).status_code == 422
    assert client.get("/api/v1/dead-letters/abc", headers=F).status_code == 422
    assert ledger_counts(client.app.state.store) == counts
    # given and equal to what the server sets: accepted
    same = {**fixed, "event_id": f"redrive:{dead['key']}"}
    assert redrive(client, dead["id"], same).json()["outcome"] == "applied"


def test_finance_rejections_are_corrected_by_a_new_command_not_redriven(client) -> None:
    too_much = {"payout_id": "po-big", "sharer_id": "u2", "amount": 10**9, "currency": "CNY"}
    rejected = client.post("/api/v1/payouts", headers=F, json=too_much)
    assert rejected.json()["reason"] == "insufficient_available"
    dead = dead_letter_of(client, "payout-requested:po-big")
    answer = redrive(client, dead["id"], {"type": "payout_requested"})
    assert answer.status_code == 422 and "new command" in answer.json()["detail"]


def _finance_hash() -> str:
    from ledger.api.auth import hash_token
    from tests.support.api import TOKENS

    return hash_token(TOKENS["finance"])


def test_a_record_that_never_became_an_event_is_redriven_from_a_whole_event(client, world) -> None:
    """An undecodable line (cut short) has no JSON form to start from: the correction is a
    whole event (occurred_at required), and the diff replaces the raw text at path ""."""
    _, now = world
    raw = '{"type": "click_recorded", "event_id": "c9", "click_id": "c9"'
    LedgerService(client.app.state.store).ingest(
        [Undecodable("upload.jsonl:3", "malformed_json", "cut short", raw)]
    )
    dead = next(
        d
        for d in client.get("/api/v1/dead-letters?limit=1000", headers=F).json()["items"]
        if d["source"] == "upload.jsonl:3"
    )
    click = {
        "type": "click_recorded",
        "click_id": "c9",
        "sharer_id": "u2",
        "buyer_id": "b9",
        "product_id": "p1",
    }
    missing_time = redrive(client, dead["id"], click)
    assert missing_time.status_code == 422 and "occurred_at" in missing_time.json()["detail"]
    answer = redrive(client, dead["id"], {**click, "occurred_at": now - DAY})
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
    [change] = answer.json()["changes"]
    assert (change["op"], change["path"], change["before"]) == ("replace", "", raw)
    assert change["after"]["click_id"] == "c9" and "event_id" not in change["after"]
