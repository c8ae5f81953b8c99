"""Export to an Avro OCF and replay: a PostgreSQL ledger replayed into SQLite has the same
head, dead letters and parked events; Apache Avro for Java reads the file; the CLI prints
both heads. Also the view commands' CLI (rebuild with progress, check's exit status)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from ledger.cli import main
from ledger.export.check import read_export
from ledger.export.file import ExportError
from ledger.export.replay import ReplayError, replay
from ledger.export.write import export
from ledger.service import LedgerService, Received, Undecodable
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.verify import verify
from schemas.examples import VECTORS_DIR
from tests.support import reads as queries
from tests.support.streams import T0, Ev

REPO = Path(__file__).resolve().parents[2]


def _fill(store) -> None:
    """A simulated platform over two chains, plus rejected, parked and undecodable records."""
    events = generate(5, orders=150).all()
    service = LedgerService(store)
    for start in range(0, len(events), 100):
        chain = f"ledger.orders/{(start // 100) % 2}"
        service.ingest(
            [
                Received(e, f"{chain}@{start + i}", chain)
                for i, e in enumerate(events[start : start + 100])
            ]
        )
    ev = Ev("x")
    service.ingest(
        [
            Received(ev.refund("R-wait", "O-not-yet", "B9", [("L1", 1)], T0), "late", "extra"),
            Received(ev.enroll("S-orphan", "S-missing"), "late", "extra"),
            Received(ev.request("P-x", "nobody", 5, at=T0 + 1), "bad", "extra"),  # rejected
            Undecodable("raw@1", "malformed_json", "not valid JSON", '{"type": "order'),
        ]
    )


def _dead(store) -> list[tuple]:
    return sorted(
        (d["event_id"] or "", d["reason"], d["source"]) for d in queries.dead_letters(store)
    )


def test_postgres_export_replays_into_sqlite_with_the_same_head(fresh_pg_url, tmp_path) -> None:
    source = open_store(fresh_pg_url)
    _fill(source)
    out = tmp_path / "history.avro"
    report = export(source, out)
    assert report.head == verify(source).head
    with source.read() as conn:
        assert report.events == conn.execute(select(func.count()).select_from(t.events)).scalar()
    assert report.dead_letters == 1

    target = open_store(f"sqlite:///{tmp_path / 'replayed.sqlite'}")
    replayed = replay(out, target, batch_size=77)
    assert replayed.equal, replayed.differences
    assert replayed.replayed_head == report.head
    # every event keeps its own chain: the event log is the source's, link for link
    assert verify(target).event_chains == verify(source).event_chains
    assert verify(target).chains == verify(source).chains
    assert queries.account_balances(target) == queries.account_balances(source)
    assert _dead(target) == _dead(source)
    assert (
        [p["event_id"] for p in queries.parked_events(target)]
        == [p["event_id"] for p in queries.parked_events(source)]
        != []
    )
    with pytest.raises(ReplayError, match="already holds a ledger"):
        replay(out, target)
    source.dispose()


def test_the_file_keeps_schemas_heads_and_ledger_order(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
    _fill(store)
    out = tmp_path / "h.avro"
    export(store, out)
    meta, records = read_export(out)
    rows = list(records)
    arrivals = [r["arrival"] for r in rows if r["kind"] == "event"]
    assert arrivals == sorted(arrivals) and len(arrivals) == len(set(arrivals))
    assert {r["outcome"] for r in rows} == {"applied", "rejected", "parked", "dead_letter"}
    heads = json.loads(meta["ledger.chain_heads"])
    assert set(heads) == {"ledger.orders/0", "ledger.orders/1"}
    assert {s["name"] for s in json.loads(meta["ledger.event_schemas"])} >= {
        "OrderPlaced",
        "SettlementRun",
    }
    not_export = tmp_path / "other.avro"
    not_export.write_bytes(b"not avro at all")
    with pytest.raises(ExportError):
        read_export(not_export)


def _avro_jars() -> Path:
    spec = importlib.util.spec_from_file_location("java_check", VECTORS_DIR / "java_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fetch_jars()


def test_apache_avro_java_reads_the_export(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
    _fill(store)
    out = tmp_path / "h.avro"
    report = export(store, out)
    classpath = os.pathsep.join(str(p) for p in sorted(_avro_jars().glob("*.jar")))
    run = subprocess.run(
        ["java", "-cp", classpath, str(REPO / "tests/java/ReadExport.java"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    _, records = read_export(out)
    rows = list(records)
    assert seen == {
        "records": len(rows) + 1,  # and the seal
        "events": report.events,
        "decoded": sum(1 for r in rows if r["avro"] is not None),
        "mismatched": 0,
        "head": report.head,
        "format": "ledger-export/2",
        "first_event_id": next(r["event_id"] for r in rows if r["avro"] is not None),
    }
    assert seen["decoded"] >= report.events - 1  # all but the malformed payout request


def test_cli_export_replay_rebuild_check(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'l.sqlite'}"
    store = open_store(db)
    _fill(store)
    runner = CliRunner()
    out = tmp_path / "h.avro"
    exported = runner.invoke(main, ["export", "--db", db, str(out)])
    assert exported.exit_code == 0, exported.output
    head = verify(store).head
    replayed = runner.invoke(
        main, ["replay", str(out), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}"]
    )
    assert replayed.exit_code == 0, replayed.output
    assert f"source head   {head}" in replayed.output
    assert f"replayed head {head}" in replayed.output

    rebuilt = runner.invoke(main, ["rebuild", "--db", db])
    assert rebuilt.exit_code == 0, rebuilt.output
    entries = verify(store).entries_checked
    for view in ("balances", "payouts", "totals"):
        assert f"{view}: {entries} entries" in rebuilt.output
    assert runner.invoke(main, ["check", "--db", db]).exit_code == 0
    with store.begin() as conn:
        conn.execute(
            text(
                "UPDATE view_fee_totals SET fees = fees + 1 "
                "WHERE day = (SELECT min(day) FROM view_fee_totals)"
            )
        )
    checked = runner.invoke(main, ["check", "--db", db])
    assert checked.exit_code == 1
    assert "DRIFT totals" in checked.output and "fees" in checked.output
    assert runner.invoke(main, ["rebuild", "nope", "--db", db]).exit_code == 2


def test_every_dead_letter_survives_the_round_trip(tmp_path) -> None:
    """A dead letter that shares its event id with a logged event (an undecodable record
    carrying a known id) was left out of the export: the replayed ledger lacked it."""
    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
    _fill(store)
    with store.read() as conn:  # any logged event id will do
        logged = conn.execute(select(t.events.c.event_id).limit(1)).scalar()
    assert logged is not None
    LedgerService(store).ingest(
        [Undecodable("raw@2", "malformed_json", "cut short", '{"event_id": "x"', event_id=logged)]
    )
    out = tmp_path / "h.avro"
    export(store, out)
    target = open_store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    replayed = replay(out, target)
    assert replayed.equal, replayed.differences
    assert _dead(target) == _dead(store)
    assert any(d[0] == logged and d[2] == "raw@2" for d in _dead(target))


def test_a_ledger_that_does_not_verify_is_not_signed(tmp_path) -> None:
    from tests.support.tamper import triggers_lifted

    db = f"sqlite:///{tmp_path / 'l.sqlite'}"
    store = open_store(db)
    _fill(store)
    runner = CliRunner()
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    assert (
        runner.invoke(
            main, ["keygen", "--private", str(private), "--public", str(public)]
        ).exit_code
        == 0
    )
    with triggers_lifted(store) as conn:
        conn.execute(
            text(
                "UPDATE postings SET amount = amount + 1 "
                "WHERE entry_seq = (SELECT min(seq) FROM entries) AND ordinal = 0"
            )
        )
    result = runner.invoke(
        main, ["export", "--db", db, "--key", str(private), str(tmp_path / "h.avro")]
    )
    assert result.exit_code == 1 and "not signed: the ledger does not verify" in result.output


def test_a_many_block_export_round_trips(tmp_path, monkeypatch) -> None:
    from ledger.export import file as export_file
    from tests.support.exports_raw import take_apart

    monkeypatch.setattr(export_file, "BLOCK_TARGET_BYTES", 4096)
    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
    _fill(store)
    out = tmp_path / "h.avro"
    export(store, out)
    assert len(take_apart(out).blocks) > 20
    replayed = replay(out, open_store(f"sqlite:///{tmp_path / 'r.sqlite'}"), batch_size=50)
    assert replayed.equal and replayed.replayed_head == verify(store).head
