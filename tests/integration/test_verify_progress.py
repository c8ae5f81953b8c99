"""``verify`` reports its progress stage by stage (a long-running command shows progress),
and the progress changes nothing about what it finds."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from ledger.cli import main
from ledger.store import tables
from ledger.store.opening import open_store
from ledger.store.verifier import STAGES
from ledger.store.verify import verify
from tests.support.tamper import build_ledger


def test_every_stage_reaches_its_total_in_order(db_url: str) -> None:
    store = open_store(db_url)
    try:
        build_ledger(store, orders=12)
        with store.read() as conn:
            entries = conn.execute(select(func.count()).select_from(tables.entries)).scalar_one()
            events = conn.execute(select(func.count()).select_from(tables.events)).scalar_one()
        calls: list[tuple[str, int, int]] = []
        report = verify(store, batch_size=7, progress=lambda *call: calls.append(call))
        assert report.ok
        assert report == verify(store)  # the same report without a progress callback
    finally:
        store.dispose()
    stages = [stage for stage, _, _ in calls]
    assert sorted(set(stages), key=stages.index) == list(STAGES)  # each once, in order
    assert stages == sorted(stages, key=STAGES.index)
    last = {stage: (done, total) for stage, done, total in calls}
    assert last["journal"] == (entries, entries)
    assert last["event log"] == (events, events)
    assert last["replay: rules"] == (events, events)
    assert last["replay: comparing"] == (entries, entries)
    for stage in STAGES:  # never backwards within a stage
        done = [d for s, d, _ in calls if s == stage]
        assert done == sorted(done)
    assert len([s for s in stages if s == "journal"]) > 1  # batch_size 7: several reports


def test_no_replay_stops_after_the_chains(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    store = open_store(url)
    try:
        build_ledger(store, orders=3)
        stages: list[str] = []
        assert verify(store, replay=False, progress=lambda s, *_: stages.append(s)).ok
    finally:
        store.dispose()
    assert set(stages) == {"journal", "event log"}
    result = CliRunner().invoke(main, ["verify", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith("{")  # progress goes to stderr, never stdout
