"""`ledger parked` reports an event left waiting although its reference is applied (the
defect two writers of one partition once caused), and exits 1."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import insert

from ledger.cli import main
from ledger.domain.events import RefundIssued, RefundLine
from ledger.service import LedgerService, Received
from ledger.store import tables as t
from ledger.store.opening import open_store
from tests.support.worked_example import setup as worked_example


def test_a_parked_event_whose_reference_is_applied_is_reported(db_url: str) -> None:
    events = [r.incoming.event for r in worked_example().results]
    store = open_store(db_url)
    service = LedgerService(store)
    waiting = RefundIssued(
        "e-wait",
        2_000_000_000_000,
        "t",
        refund_id="R9",
        order_id="O-later",
        buyer_id="B1",
        lines=(RefundLine("L1", 1),),
    )
    service.ingest([Received(e, f"in:{n}", "in") for n, e in enumerate([*events, waiting])])
    runner = CliRunner()
    fine = runner.invoke(main, ["parked", "--db", db_url])
    assert fine.exit_code == 0 and "e-wait" in fine.output and "defect" not in fine.output

    with store.begin() as conn:  # what a lost release would leave: waiting for O1, applied
        conn.execute(
            insert(t.parked).values(
                event_id="e-orphan",
                waits_for="order:O1",
                subject=None,
                arrival=10**9,
                type="refund_issued",
                source="in:99",
                payload="{}",
                parked_at=1,
            )
        )
    orphan = runner.invoke(main, ["parked", "--db", db_url])
    assert orphan.exit_code == 1
    assert (
        "1 parked event(s) wait for a reference that is applied: e-orphan (order:O1)"
        in orphan.output
    )
    store.dispose()
