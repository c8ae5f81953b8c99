"""The ledger CLI end to end on a real database: ingest, balances (also as of a past
time), verify (and its exit code on tampering), dead letters, parked events."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import text

from ledger.cli import main
from ledger.domain.events import RefundIssued, RefundLine
from ledger.jsonform import event_to_json
from ledger.store.opening import open_store
from tests.support.roles import as_owner
from tests.support.worked_example import setup as worked_example

T0 = 1_767_225_600_000


def write_events(path, events, extra_lines=()) -> None:
    with path.open("w") as fh:
        for event in events:
            fh.write(json.dumps(event_to_json(event)) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_ingest_then_query_and_verify(db_url: str, tmp_path) -> None:
    events = [r.incoming.event for r in worked_example().results]
    later_refund = RefundIssued(
        "e-r1",
        T0 + 86_400_000,
        "t",
        refund_id="R1",
        order_id="O1",
        buyer_id="B1",
        lines=(RefundLine("L1", 4400),),
    )
    orphan = RefundIssued(
        "e-r9",
        T0 + 40,
        "t",
        refund_id="R9",
        order_id="O9",
        buyer_id="B1",
        lines=(RefundLine("L1", 1),),
    )
    path = tmp_path / "events.jsonl"
    write_events(path, [*events, later_refund, orphan], ['{"type": "order_placed"'])

    result = run("ingest", str(path), "--db", db_url, "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert "7 applied" in result.output and "1 parked" in result.output

    now = json.loads(run("balances", "--db", db_url, "--json").output)
    assert {r["sharer_id"]: r["pending"] for r in now} == {"S1": 561, "S2": 336, "S3": 224}
    before = json.loads(
        run(
            "balances",
            "--db",
            db_url,
            "--json",
            "--sharer",
            "S1",
            "--as-of",
            "2026-01-01T12:00:00Z",
        ).output
    )
    assert [(r["sharer_id"], r["pending"]) for r in before] == [("S1", 1067)]

    dead = json.loads(run("dead-letters", "--db", db_url, "--json").output)
    assert [d["reason"] for d in dead] == ["malformed_json"]
    parked = json.loads(run("parked", "--db", db_url, "--json").output)
    assert [(p["event_id"], p["waits_for"]) for p in parked] == [("e-r9", "order:O9")]

    ok = run("verify", "--db", db_url, "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True
    head = json.loads(ok.output)["head"]
    assert run("verify", "--db", db_url, "--expect-head", head).exit_code == 0
    assert run("verify", "--db", db_url, "--expect-head", "0" * 64).exit_code == 1

    # the owner (or anyone with file access) edits an amount behind the triggers' back
    store = open_store(as_owner(db_url))
    with store.begin() as conn:
        if store.backend == "postgresql":
            conn.execute(text("ALTER TABLE postings DISABLE TRIGGER ALL"))
            conn.execute(text("UPDATE postings SET amount = amount + 1 WHERE amount = 1067"))
            conn.execute(text("ALTER TABLE postings ENABLE TRIGGER ALL"))
        else:
            conn.execute(text("DROP TRIGGER postings_no_update"))
            conn.execute(text("UPDATE postings SET amount = amount + 1 WHERE amount = 1067"))
    store.dispose()
    bad = run("verify", "--db", db_url, "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["ok"] is False and report["first_bad_seq"] == 1
    assert "seq 1" in report["problem"]


def test_reingesting_the_same_file_changes_nothing(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'l.sqlite'}"
    path = tmp_path / "events.jsonl"
    write_events(path, [r.incoming.event for r in worked_example().results])
    assert run("ingest", str(path), "--db", db).exit_code == 0
    head = json.loads(run("verify", "--db", db, "--json").output)["head"]
    again = run("ingest", str(path), "--db", db)
    assert "6 duplicates" in again.output
    assert json.loads(run("verify", "--db", db, "--json").output)["head"] == head


def test_bad_arguments_give_a_message_not_a_traceback(tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["balances", "--db", f"sqlite:///{tmp_path}/x.sqlite", "--as-of", "yesterday"]
    )
    assert result.exit_code == 2 and "not an ISO-8601 time" in result.output
    missing = CliRunner().invoke(main, ["ingest", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
