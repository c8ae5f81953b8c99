"""The database-backed service must behave exactly like the in-memory reference model,
on SQLite and on PostgreSQL (the ``db_url`` fixture runs each test on both)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ledger.domain.events import OrderPlaced, RefundIssued, RefundLine
from ledger.domain.memory import InMemoryLedger
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.verify import verify
from tests.support import reads as queries
from tests.support.worked_example import setup as worked_example


def ingest(store, events, batch_size=100, chain="test"):
    service = LedgerService(store)
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        service.ingest([Received(e, f"test:{start + i}", chain) for i, e in enumerate(chunk)])


def model(events) -> InMemoryLedger:
    ledger = InMemoryLedger()
    ledger.ingest(events)
    return ledger


def dead_reasons(store) -> list[tuple[str, str]]:
    d = t.dead_letters
    with store.read() as conn:
        return sorted(tuple(r) for r in conn.execute(select(d.c.event_id, d.c.reason)))


def test_simulated_platform_matches_the_model(db_url: str) -> None:
    events = generate(seed=3, sharers=30, buyers=60, orders=150).all()
    store = open_store(db_url)
    ingest(store, events, batch_size=97)
    expected = model(events)
    assert queries.account_balances(store) == expected.balances()
    assert dead_reasons(store) == sorted((e, r) for e, r, _ in expected.rejected)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.entries)).scalar_one() == len(
            expected.entries
        )
    report = verify(store)
    assert report.ok, report.problem
    assert report.entries_checked == len(expected.entries) > 100


def test_redelivery_changes_nothing_and_batching_does_not_change_the_head(
    db_url: str, tmp_path
) -> None:
    events = generate(seed=5, sharers=20, buyers=40, orders=80).all()
    store = open_store(db_url)
    ingest(store, events, batch_size=50)
    head = verify(store).head
    balances = queries.account_balances(store)
    ingest(store, events[::3] + events, batch_size=33)  # every event again, some twice
    assert verify(store).head == head
    assert queries.account_balances(store) == balances
    other = open_store(f"sqlite:///{tmp_path / 'other.sqlite'}")
    ingest(other, events, batch_size=1000)
    assert verify(other).head == head


def test_worked_example_through_the_database(db_url: str) -> None:
    events = [r.incoming.event for r in worked_example().results]
    store = open_store(db_url)
    ingest(store, events, batch_size=2)
    b = queries.account_balances(store)
    assert b[("platform:fees", "CNY")] == 185
    assert [b[(f"sharer:S{k}:pending", "CNY")] for k in (1, 2, 3)] == [1067, 640, 426]
    assert b[("merchant:M1:charges", "CNY")] == -2318


def test_refund_before_its_order_waits_then_applies(db_url: str) -> None:
    events = [r.incoming.event for r in worked_example().results]
    order = events[-1]
    assert isinstance(order, OrderPlaced)
    refund = RefundIssued(
        "e-r1",
        order.occurred_at + 5,
        "test",
        refund_id="R1",
        order_id="O1",
        buyer_id="B1",
        lines=(RefundLine("L1", 4400),),
    )
    store = open_store(db_url)
    ingest(store, events[:-1] + [refund], batch_size=100)
    assert [p["event_id"] for p in queries.parked_events(store)] == ["e-r1"]
    ingest(store, [order], batch_size=100)
    assert queries.parked_events(store) == []
    in_order = model(events + [refund])
    assert queries.account_balances(store) == in_order.balances()
    assert verify(store).ok


@pytest.mark.parametrize("batch_size", [1, 7])
def test_waiting_enrollment_cascade_across_batches(db_url: str, batch_size: int) -> None:
    from ledger.domain.events import SharerEnrolled

    chain = [
        SharerEnrolled(
            f"e{n}", 1000 + n, "t", sharer_id=f"s{n}", upline_id=f"s{n - 1}" if n else None
        )
        for n in range(6)
    ]
    reversed_chain = list(reversed(chain))
    store = open_store(db_url)
    ingest(store, reversed_chain[:-1], batch_size=batch_size)
    assert len(queries.parked_events(store)) == 5
    ingest(store, reversed_chain[-1:], batch_size=batch_size)
    assert queries.parked_events(store) == []
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.sharers)).scalar_one() == 6


def test_a_record_the_database_refuses_is_isolated_and_kept(db_url: str) -> None:
    events = [r.incoming.event for r in worked_example().results]
    store = open_store(db_url)
    service = LedgerService(store)
    batch = [Received(e, f"t/0@{n}", "t/0", ("t", 0, n)) for n, e in enumerate(events)]
    # the order's accrual cannot be written to an over-long chain name: the store refuses it
    batch[-1] = Received(events[-1], "t/0@5", "x" * 300, ("t", 0, 5))
    report = service.ingest_isolating(batch, starts=service.claim("g", [("t", 0)]), group="g")
    assert report.undecodable == 1
    assert [(r["event_id"], r["reason"]) for r in queries.dead_letters(store)] == [
        ("e-o1", "unstorable")
    ]
    assert service.stored_offsets("g") == {("t", 0): 6}
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.sharers)).scalar_one() == 3


def test_refunds_accumulate_across_transactions(db_url: str) -> None:
    events = [r.incoming.event for r in worked_example().results]
    store = open_store(db_url)
    ingest(store, events)
    first = RefundIssued(
        "e-r1",
        1_767_225_600_100,
        "t",
        refund_id="R1",
        order_id="O1",
        buyer_id="B1",
        lines=(RefundLine("L1", 4400),),
    )
    rest = RefundIssued(
        "e-r2",
        1_767_225_600_200,
        "t",
        refund_id="R2",
        order_id="O1",
        buyer_id="B1",
        lines=(RefundLine("L1", 4400), RefundLine("L2", 1200)),
    )
    too_much = RefundIssued(
        "e-r3",
        1_767_225_600_300,
        "t",
        refund_id="R3",
        order_id="O1",
        buyer_id="B1",
        lines=(RefundLine("L2", 1),),
    )
    for event in (first, rest, too_much):
        ingest(store, [event])
    assert queries.account_balances(store) == {}
    assert [(d["event_id"], d["reason"]) for d in queries.dead_letters(store)] == [
        ("e-r3", "over_refund")
    ]


def test_an_id_with_a_nul_is_rejected_as_invalid_not_unstorable(db_url: str) -> None:
    events = [r.incoming.event for r in worked_example().results]
    order = events[-1]
    assert isinstance(order, OrderPlaced)
    bad = OrderPlaced(
        "e-bad",
        order.occurred_at,
        "t",
        order_id="O\x00",
        buyer_id="b\x00ad",
        merchant_id="M1",
        currency="CNY",
        lines=order.lines,
    )
    store = open_store(db_url)
    service = LedgerService(store)
    report = service.ingest_isolating(
        [Received(e, f"t/0@{n}", "t/0", ("t", 0, n)) for n, e in enumerate([*events, bad])],
        starts=service.claim("g", [("t", 0)]),
        group="g",
    )
    assert report.undecodable == 0 and report.rejected == 1
    assert [(d["event_id"], d["reason"]) for d in queries.dead_letters(store)] == [
        ("e-bad", "invalid_value")
    ]
