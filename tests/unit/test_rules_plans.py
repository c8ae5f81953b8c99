"""SPEC §3 "Plan in force" and the Plans precise reading.

Unless a test says otherwise: plan P1 from T0 (default rate 1000 bps, fee 800, shares
5000/3000/2000, frozen 7 days, window 30 days); S1 is enrolled with no upline, so an order
of 10000 at the default rate pays S1 460 (pool 1000, fee 80).
"""

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, earned, postings_of, reasons


def base(ev: Ev) -> list:
    return [ev.plan(), ev.enroll("S1"), ev.click("C1", "S1", "B1", T0 + 1)]


def accrual_of(ledger: InMemoryLedger, order_id: str):  # type: ignore[no-untyped-def]
    found = [e for e in ledger.entries if e.kind == "accrual" and e.order_id == order_id]
    assert len(found) == 1, found
    return found[0]


def test_order_uses_latest_plan_not_after_its_time_boundary_exact() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + [
            ev.plan("P2", T0 + 10 * DAY, rate=2000),
            ev.click("C2", "S1", "B1", T0 + 10 * DAY - 2),
            ev.order("O1", "B1", T0 + 10 * DAY - 1),  # 1 ms before P2: P1
            ev.order("O2", "B1", T0 + 10 * DAY),  # exactly at P2's effective-from: P2
        ]
    )
    assert ledger.rejected == []
    o1, o2 = accrual_of(ledger, "O1"), accrual_of(ledger, "O2")
    assert (o1.plan_id, postings_of(o1)["sharer:S1:pending"]) == ("P1", 460)
    assert (o2.plan_id, postings_of(o2)["sharer:S1:pending"]) == ("P2", 920)
    assert postings_of(o2)["platform:fees"] == 160


def test_plan_in_force_is_by_effective_from_not_by_arrival() -> None:
    """P2 arrives before P1 but starts later: an order between them is priced by P1."""
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan("P2", T0 + 10 * DAY, rate=2000),
            ev.plan("P1", T0),
            ev.enroll("S1"),
            ev.click("C1", "S1", "B1", T0 + 1),
            ev.order("O1", "B1", T0 + 5 * DAY),
        ]
    )
    assert accrual_of(ledger, "O1").plan_id == "P1"
    assert earned(ledger) == {"S1": 460}


def test_a_later_plan_never_reprices_an_applied_order_and_refunds_keep_its_plan() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(base(ev) + [ev.order("O1", "B1", T0 + 5 * DAY)])
    before = list(ledger.entries)
    # P2 is retroactive: it starts before O1, but O1 was applied under P1
    ledger.ingest([ev.plan("P2", T0 + DAY, rate=2000, fee=0, shares=(10000, 0, 0))])
    assert ledger.entries == before
    assert earned(ledger) == {"S1": 460}
    ledger.ingest([ev.refund("R1", "O1", "B1", [("L1", 5000)], T0 + 20 * DAY)])
    # P1's arithmetic on the remaining 5000: pool 500, fee 40, level 1 230
    assert postings_of(ledger.entries[-1]) == {
        "sharer:S1:pending": -230,
        "platform:fees": -40,
        "merchant:M1:charges": 270,
    }
    assert ledger.entries[-1].plan_id == "P1"
    # an order placed after P2 and timed after its start is priced by P2
    ledger.ingest([ev.order("O2", "B1", T0 + 6 * DAY)])
    assert accrual_of(ledger, "O2").plan_id == "P2"
    assert postings_of(accrual_of(ledger, "O2"))["sharer:S1:pending"] == 2000


def test_refund_after_plan_change_uses_order_plan_worked_example() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            ev.enroll("S3"),
            ev.enroll("S2", "S3"),
            ev.enroll("S1", "S2"),
            ev.click("C1", "S1", "B1", T0 + 10),
            ev.order("O1", "B1", T0 + 20, [("L1", 8800, 2500), ("L2", 1200, None)]),
            ev.plan("P2", T0 + DAY, rate=5000, fee=0, shares=(10000, 0, 0)),
            ev.refund("R1", "O1", "B1", [("L1", 4400)], T0 + 2 * DAY),
        ]
    )
    assert ledger.rejected == []
    assert postings_of(ledger.entries[-1]) == {
        "platform:fees": -88,
        "sharer:S1:pending": -506,
        "sharer:S2:pending": -304,
        "sharer:S3:pending": -202,
        "merchant:M1:charges": 1100,
    }


def test_settlement_uses_frozen_days_of_the_order_plan() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    completed = T0 + 3 * DAY
    ledger.ingest(
        base(ev)
        + [
            ev.order("O1", "B1", T0 + DAY),  # P1: frozen 7 days
            ev.plan("P2", T0 + 2 * DAY, frozen=0),
            ev.complete("O1", "B1", completed),  # completed while P2 is in force
            ev.run("RUN1", completed + DAY),  # P2's 0 days would settle it; P1's 7 do not
        ]
    )
    assert ledger.balance("sharer:S1:pending", "CNY") == 460
    assert ledger.balance("sharer:S1:available", "CNY") == 0
    ledger.ingest([ev.run("RUN2", completed + 7 * DAY)])
    assert ledger.balance("sharer:S1:pending", "CNY") == 0
    assert ledger.balance("sharer:S1:available", "CNY") == 460


def test_window_comes_from_the_order_plan() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(window=30),
            ev.plan("P2", T0 + 10 * DAY, window=1),
            ev.enroll("SA"),
            ev.enroll("SB"),
            ev.click("C1", "SA", "B1", T0 + DAY),
            ev.order("O1", "B1", T0 + 5 * DAY),  # P1: a 4-day-old click qualifies
            ev.click("C2", "SB", "B2", T0 + 10 * DAY),
            ev.order("O2", "B2", T0 + 12 * DAY),  # P2: a 2-day-old click does not
        ]
    )
    assert earned(ledger) == {"SA": 460}


def test_self_purchase_rule_comes_from_the_order_plan() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(self_ok=False),
            ev.plan("P2", T0 + 10 * DAY, self_ok=True),
            ev.enroll("S1"),
            ev.click("C1", "S1", "S1", T0 + DAY),
            ev.order("O1", "S1", T0 + 2 * DAY),  # P1 forbids buying through one's own link
            ev.click("C2", "S1", "S1", T0 + 11 * DAY),
            ev.order("O2", "S1", T0 + 12 * DAY),  # P2 allows it
        ]
    )
    assert [e.order_id for e in ledger.entries if e.kind == "accrual"] == ["O2"]
    assert earned(ledger) == {"S1": 460}


def test_rates_and_fee_come_from_the_order_plan() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + [
            ev.plan("P2", T0 + 10 * DAY, rate=3000, fee=1000, shares=(4000, 0, 0)),
            ev.click("C2", "S1", "B1", T0 + 11 * DAY),
            ev.order("O2", "B1", T0 + 12 * DAY, [("L1", 10_000, None), ("L2", 10_000, 500)]),
        ]
    )
    # pool 3000 + 500 = 3500; fee 350; level 1 = 3500 × 0.9 × 0.4 = 1260
    assert postings_of(accrual_of(ledger, "O2")) == {
        "platform:fees": 350,
        "sharer:S1:pending": 1260,
        "merchant:M1:charges": -1610,
    }


def test_duplicate_plan_id_is_rejected_and_prices_nothing() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + [
            ev.plan("P1", T0 + 5 * DAY, rate=5000, event_id="e-dup"),
            ev.order("O1", "B1", T0 + 6 * DAY),
        ]
    )
    assert reasons(ledger) == {"e-dup": "duplicate_plan_id"}
    assert accrual_of(ledger, "O1").plan_id == "P1"
    assert earned(ledger) == {"S1": 460}


def test_duplicate_effective_from_is_rejected_and_prices_nothing() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + [
            ev.plan("P9", T0, rate=5000, event_id="e-dup"),
            ev.order("O1", "B1", T0 + DAY),
        ]
    )
    assert reasons(ledger) == {"e-dup": "duplicate_effective_from"}
    assert accrual_of(ledger, "O1").plan_id == "P1"
    assert earned(ledger) == {"S1": 460}


def test_order_before_any_plan_earns_nothing_and_a_retroactive_plan_does_not_reprice() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan("P1", T0 + DAY),
            ev.enroll("S1"),
            ev.click("C1", "S1", "B1", T0 + 1),
            ev.order("O1", "B1", T0 + 2),  # no plan in force yet at T0+2
        ]
    )
    assert ledger.rejected == [] and ledger.entries == []
    ledger.ingest(
        [
            ev.plan("P0", T0, rate=5000),  # now in force at T0+2, but O1 is already applied
            ev.refund("R1", "O1", "B1", [("L1", 100)], T0 + 3),
            ev.complete("O1", "B1", T0 + 4),
            ev.run("RUN1", T0 + 100 * DAY),
        ]
    )
    assert ledger.rejected == [] and ledger.entries == []
