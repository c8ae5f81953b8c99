"""``ledger redrive`` and the redrive column of ``ledger dead-letters``, on a ledger built
through the API; and the file path, where a redrive id on a publisher's type is accepted
(files are the operator's and already carry finance's events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledger.api.app import create_app
from ledger.jsonform import event_to_json
from ledger.store import tables as t
from ledger.store.opening import open_store
from tests.support.api import built_world, publish, token_book, typo_refund
from tests.support.cli import run


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, int]:
    return built_world(tmp_path_factory.mktemp("cli-redrive"))


@pytest.fixture
def ledger_url(world, tmp_path) -> str:
    """A copy of the world with one dead letter: the refund with a typo'd line id."""
    copy = tmp_path / "ledger.sqlite"
    copy.write_bytes(world[0].read_bytes())
    store = open_store(f"sqlite:///{copy}")
    with TestClient(create_app(store, token_book())) as http:
        assert publish(http, typo_refund(world[1])).json()["reason"] == "unknown_line"
    store.dispose()
    return f"sqlite:///{copy}"


def dead_rows(url: str, *more: str) -> list[dict]:
    result = run("dead-letters", "--db", url, "--json", *more)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_redrive_shows_the_change_applies_it_and_the_list_shows_it(ledger_url) -> None:
    [dead] = dead_rows(ledger_url)
    stored = _raw(ledger_url, dead["id"])
    result = run(
        "redrive", dead["id"], "--set", '/lines/0/line_id="l1"', "--by", "alice", "--db", ledger_url
    )
    assert result.exit_code == 0, result.output
    assert '~ /lines/0/line_id: "lI" -> "l1"' in result.output
    assert f"redrive:{dead['key']}: applied" in result.output
    assert "as finance:alice" in result.output
    [after] = dead_rows(ledger_url)
    assert after["redriven"] == {"event_id": f"redrive:{dead['key']}", "outcome": "applied"}
    assert dead_rows(ledger_url, "--not-redriven") == []
    assert [d["id"] for d in dead_rows(ledger_url, "--redriven")] == [dead["id"]]
    assert _raw(ledger_url, dead["id"]) == stored  # the original, byte-equal
    table = run("dead-letters", "--db", ledger_url)
    assert f"applied redrive:{dead['key']}" in table.output
    # the API shows who did it
    store = open_store(ledger_url)
    with TestClient(create_app(store, token_book())) as http:
        detail = http.get(
            f"/api/v1/dead-letters/{dead['id']}",
            headers={"Authorization": "Bearer auditor-token-1"},
        ).json()
    store.dispose()
    assert detail["redrive"]["by"] == "finance:alice"


def test_a_second_redrive_answers_the_first_or_is_refused(ledger_url) -> None:
    [dead] = dead_rows(ledger_url)
    fix = ("--set", 'lines.0.line_id="l1"', "--by", "alice", "--db", ledger_url)
    assert run("redrive", dead["id"], *fix).exit_code == 0
    again = run("redrive", dead["id"], *fix[:2], "--by", "bob", "--db", ledger_url, "--json")
    assert again.exit_code == 0, again.output
    answer = json.loads(again.output)
    assert answer["replayed"] is True and answer["outcome"] == "applied"
    other = run("redrive", dead["id"], "--set", "/lines/0/amount=1", "--db", ledger_url)
    assert other.exit_code == 1 and "already redriven as redrive:" in other.output


def test_redrive_from_a_file_and_bad_input(ledger_url, tmp_path) -> None:
    [dead] = dead_rows(ledger_url)
    event = event_to_json(typo_refund(0))
    del event["event_id"], event["producer"], event["occurred_at"]
    event["lines"] = [{"line_id": "l1", "amount": 40_000}]
    path = tmp_path / "fixed.json"
    path.write_text(json.dumps(event))
    bad = [
        ("redrive", 999, "--db", ledger_url),
        ("redrive", dead["id"], "--set", "/lines/0/line_id=l1", "--db", ledger_url),
        ("redrive", dead["id"], "--set", "/nope/0=1", "--db", ledger_url),
        ("redrive", dead["id"], "--set", "/lines/0/amount=1", "--event", path, "--db", ledger_url),
        ("redrive", dead["id"], "--set", '/type="payout_settled"', "--db", ledger_url),
    ]
    for args in bad:
        result = run(*args)
        assert result.exit_code in (1, 2), (args, result.output)
        assert "Traceback" not in result.output and "Error" in result.output, result.output
    assert dead_rows(ledger_url)[0]["redriven"] is None
    done = run("redrive", dead["id"], "--event", path, "--db", ledger_url, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["outcome"] == "applied"


def test_files_may_carry_a_redrive_of_a_publisher_event(tmp_path) -> None:
    """A file is the operator's: a redrive id on a refund is received there; a finance
    type under a redrive id, or a malformed redrive id, is a reserved_event_id dead letter."""
    from ledger.domain.events import PayoutSettled

    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    ok = event_to_json(typo_refund(1_767_225_600_000))
    ok["event_id"] = "redrive:" + "c" * 64
    payout = event_to_json(
        PayoutSettled("redrive:" + "d" * 64, 5, "t", payout_id="p", sharer_id="s")
    )
    short = {**ok, "event_id": "redrive:abc", "refund_id": "rf-2"}
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in (ok, payout, short)) + "\n")
    result = run("ingest", path, "--db", url)
    assert result.exit_code in (0, 1), result.output
    rows = dead_rows(url)
    by_id = {r["event_id"]: r["reason"] for r in rows}
    assert by_id["redrive:" + "d" * 64] == "reserved_event_id"
    assert by_id["redrive:abc"] == "reserved_event_id"
    # the redriven refund was received (logged), its order being unknown it waits (parked)
    assert ok["event_id"] not in by_id
    store = open_store(url)
    with store.read() as conn:
        logged = conn.execute(select(t.events.c.event_id)).scalars().all()
    store.dispose()
    assert ok["event_id"] in logged
    # the refused line kept its raw JSON form: it is the starting point of its correction
    [short_dead] = [r for r in rows if r["event_id"] == "redrive:abc"]
    fixed = run("redrive", short_dead["id"], "--set", '/refund_id="rf-3"', "--db", url)
    assert fixed.exit_code == 0, fixed.output
    assert '~ /refund_id: "rf-2" -> "rf-3"' in fixed.output
    assert ": parked" in fixed.output  # its order is not in this ledger: it waits for it


def _raw(url: str, dead_id: int) -> tuple:
    store = open_store(url)
    with store.read() as conn:
        row = conn.execute(select(t.dead_letters).where(t.dead_letters.c.id == dead_id)).one()
    store.dispose()
    return tuple(row)
