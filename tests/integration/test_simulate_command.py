"""``ledger simulate`` writes the events file the README's examples start from: the
simulator's events as JSON lines, the same for the same seed, which ``ledger ingest``
turns into the ledger the simulator's events give in process."""

from __future__ import annotations

import json

from ledger.jsonform import event_to_json
from ledger.service import LedgerService, Received
from ledger.simulate import generate, generate_dense
from ledger.store.opening import open_store
from tests.support.cli import one_line_error, run
from tests.support.reads import account_balances, dead_letters


def test_the_file_holds_the_simulators_events_in_order(tmp_path) -> None:
    out = tmp_path / "events.jsonl"
    assert run("simulate", out, "--seed", 3, "--orders", 40).exit_code == 0
    want = [event_to_json(e) for e in generate(3, orders=40).all()]
    assert [json.loads(line) for line in out.read_text().splitlines()] == want
    dense = tmp_path / "dense.jsonl"
    assert run("simulate", dense, "--seed", 3, "--orders", 40, "--dense").exit_code == 0
    want = [event_to_json(e) for e in generate_dense(3, orders=40)]
    assert [json.loads(line) for line in dense.read_text().splitlines()] == want


def test_a_file_is_never_replaced_without_force(tmp_path) -> None:
    out = tmp_path / "events.jsonl"
    out.write_text("mine\n")
    one_line_error(run("simulate", out), "exists")
    assert out.read_text() == "mine\n"
    assert run("simulate", out, "--orders", 5, "--force").exit_code == 0
    assert out.read_text() != "mine\n"


def test_ingesting_the_file_gives_the_ledger_of_the_events_in_process(tmp_path) -> None:
    out = tmp_path / "events.jsonl"
    assert run("simulate", out, "--seed", 11, "--orders", 120).exit_code == 0
    from_file = f"sqlite:///{tmp_path / 'file.sqlite'}"
    assert run("ingest", out, "--db", from_file).exit_code == 0
    direct = open_store(f"sqlite:///{tmp_path / 'direct.sqlite'}")
    LedgerService(direct).ingest(
        [Received(e, "direct", "ingest") for e in generate(11, orders=120).all()]
    )
    ingested = open_store(from_file)
    assert account_balances(ingested) == account_balances(direct) != {}
    assert [d["reason"] for d in dead_letters(ingested)] == [
        d["reason"] for d in dead_letters(direct)
    ]
    ingested.dispose()
    direct.dispose()
