"""SPEC §3 "Levels" and the Enrollments precise reading, with the worked example's order
(pool 2320, fee 185, levels 1067 / 640 / 426)."""

import pytest

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, chain, earned, postings_of, reasons

LINES = [("L1", 8800, 2500), ("L2", 1200, None)]
LEVELS = [1067, 640, 426]


def sale(ev: Ev, order_id: str = "O1", at: int = T0 + DAY, sharer: str = "S1") -> list:
    return [ev.click(f"C-{order_id}", sharer, "B1", at - 1), ev.order(order_id, "B1", at, LINES)]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 6])
def test_levels_paid_up_to_three_and_missing_levels_not_charged(depth: int) -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest([ev.plan(), *chain(ev, depth), *sale(ev)])
    assert ledger.rejected == []
    paid = min(depth, 3)
    expected = {f"sharer:S{k + 1}:pending": LEVELS[k] for k in range(paid)}
    expected["platform:fees"] = 185
    expected["merchant:M1:charges"] = -(185 + sum(LEVELS[:paid]))
    (entry,) = ledger.entries
    assert postings_of(entry) == expected
    assert dict(ledger.balances()) == {
        (account, "CNY"): amount for account, amount in expected.items()
    }


def test_a_sharer_below_level_one_is_never_paid() -> None:
    """Levels go up from the attributed sharer: its downline earns nothing."""
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest([ev.plan(), *chain(ev, 3), ev.enroll("S0", "S1"), *sale(ev)])
    assert earned(ledger) == {"S1": 1067, "S2": 640, "S3": 426}


def test_a_deep_chain_pays_the_three_nearest_the_click() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest([ev.plan(), *chain(ev, 6), *sale(ev, sharer="S3")])
    assert earned(ledger) == {"S3": 1067, "S4": 640, "S5": 426}


def test_levels_are_read_at_order_time_and_never_change_afterwards() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            ev.enroll("S2", "S3"),  # waits: S3 not enrolled
            ev.enroll("S1", "S2"),  # waits: S2 not enrolled
            *sale(ev, "O1", T0 + DAY),  # S1 is not enrolled yet: O1 earns nothing
        ]
    )
    assert ledger.entries == []
    ledger.ingest(
        [
            ev.enroll("S3"),  # releases S2, then S1
            ev.refund("R1", "O1", "B1", [("L1", 4400)], T0 + 2 * DAY),
            ev.complete("O1", "B1", T0 + 2 * DAY),
            ev.run("RUN1", T0 + 30 * DAY),
        ]
    )
    assert ledger.rejected == [] and ledger.parked() == []
    assert ledger.entries == []  # O1 stays without commission
    ledger.ingest(sale(ev, "O2", T0 + 3 * DAY))
    assert earned(ledger) == {"S1": 1067, "S2": 640, "S3": 426}


def test_two_level_order_stays_two_level_when_a_deeper_chain_forms_later() -> None:
    """S2 is a root when O1 is placed; a later attempt to hang S2 under S3 is a
    re-enrollment (rejected) and O1's refund still posts two levels only."""
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            ev.enroll("S2"),
            ev.enroll("S1", "S2"),
            *sale(ev),
            ev.enroll("S3"),
            ev.enroll("S2", "S3", event_id="e-re"),
        ]
    )
    assert reasons(ledger) == {"e-re": "already_enrolled"}
    ledger.ingest([ev.refund("R1", "O1", "B1", [("L1", 4400)], T0 + 2 * DAY)])
    assert postings_of(ledger.entries[-1]) == {
        "platform:fees": -88,
        "sharer:S1:pending": -506,
        "sharer:S2:pending": -304,
        "merchant:M1:charges": 898,
    }


# --- enrollments ----------------------------------------------------------------------


def test_reenrolling_an_enrolled_sharer_is_rejected_and_keeps_the_first_upline() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            ev.enroll("S2"),
            ev.enroll("S9"),
            ev.enroll("S1", "S2"),
            ev.enroll("S1", "S9", event_id="e-re"),
            ev.enroll("S2", None, event_id="e-re2"),
            *sale(ev),
        ]
    )
    assert reasons(ledger) == {"e-re": "already_enrolled", "e-re2": "already_enrolled"}
    assert earned(ledger) == {"S1": 1067, "S2": 640}


def test_reenrolling_a_waiting_sharer_is_rejected() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            ev.enroll("S1", "S2", event_id="e-wait"),
            ev.enroll("S1", None, event_id="e-re"),
            ev.enroll("S2"),
        ]
    )
    assert reasons(ledger) == {"e-re": "already_enrolled"}
    assert ledger.parked() == []
    ledger.ingest(sale(ev))
    assert earned(ledger) == {"S1": 1067, "S2": 640}  # the waiting enrollment's upline


def test_self_upline_is_a_cycle() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest([ev.plan(), ev.enroll("S1", "S1", event_id="e-self"), ev.enroll("S2")])
    assert reasons(ledger) == {"e-self": "enrollment_cycle"}
    assert ledger.parked() == []
    ledger.ingest(sale(ev, sharer="S1"))
    assert ledger.entries == []  # S1 never enrolled
    ledger.ingest([ev.enroll("S1", "S2")])  # a correct enrollment afterwards is applied
    assert reasons(ledger) == {"e-self": "enrollment_cycle"}
    ledger.ingest(sale(ev, "O2", T0 + 2 * DAY))
    assert earned(ledger) == {"S1": 1067, "S2": 640}


@pytest.mark.parametrize("length", [2, 3, 5])
def test_a_cycle_through_waiting_enrollments_is_rejected(length: int) -> None:
    """A1 waits under A2, …, A(n-1) waits under An; An under A1 would close the loop."""
    ev = Ev()
    ledger = InMemoryLedger()
    names = [f"A{k}" for k in range(1, length + 1)]
    waiting = [ev.enroll(names[k], names[k + 1]) for k in range(length - 1)]
    ledger.ingest(
        [ev.plan(), *waiting, ev.enroll(names[-1], names[0], event_id="e-cycle"), ev.enroll("OK")]
    )
    assert reasons(ledger) == {"e-cycle": "enrollment_cycle"}
    assert sorted(ledger.parked()) == sorted(e.event_id for e in waiting)
    # the loop's last sharer can still enroll properly, releasing the waiting chain
    ledger.ingest([ev.enroll(names[-1], "OK")])
    assert ledger.parked() == [] and len(ledger.rejected) == 1


def test_a_cycle_among_waiting_enrollments_beside_applied_ones_is_rejected() -> None:
    """Next to applied R and Q: X waits under Y, Y under Z; Z under X closes Z → X → Y → Z."""
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            ev.enroll("R"),
            ev.enroll("X", "Y"),
            ev.enroll("Y", "Z"),
            ev.enroll("Z", "X", event_id="e-cycle"),
            ev.enroll("Q", "R"),
        ]
    )
    assert reasons(ledger) == {"e-cycle": "enrollment_cycle"}
    ledger.ingest([ev.enroll("Z", "R")])  # not a cycle: Z → R
    assert ledger.parked() == [] and len(ledger.rejected) == 1
    ledger.ingest(sale(ev, sharer="X"))
    assert earned(ledger) == {"X": 1067, "Y": 640, "Z": 426}


def test_upline_not_enrolled_waits_then_chain_released_in_cascade() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    s1, s2, s3 = ev.enroll("S1", "S2"), ev.enroll("S2", "S3"), ev.enroll("S3", "S4")
    ledger.ingest([ev.plan(), s1, s2, s3])
    assert sorted(ledger.parked()) == sorted([s1.event_id, s2.event_id, s3.event_id])
    ledger.ingest([ev.enroll("S4")])
    assert ledger.parked() == [] and ledger.rejected == []
    ledger.ingest(sale(ev))
    assert earned(ledger) == {"S1": 1067, "S2": 640, "S3": 426}


def test_several_enrollments_waiting_for_one_upline_are_all_released() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest([ev.plan(), ev.enroll("S1", "U"), ev.enroll("S2", "U"), ev.enroll("U")])
    assert ledger.parked() == [] and ledger.rejected == []
    ledger.ingest(sale(ev, sharer="S1") + sale(ev, "O2", T0 + 2 * DAY, sharer="S2"))
    assert earned(ledger) == {"S1": 1067, "S2": 1067, "U": 1280}


def test_enrollment_waiting_for_an_upline_never_enrolled_keeps_waiting() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    waiting = ev.enroll("S1", "GHOST")
    ledger.ingest([ev.plan(), waiting, ev.run("RUN1", T0 + DAY), *sale(ev)])
    assert ledger.parked() == [waiting.event_id]
    assert ledger.entries == [] and ledger.rejected == []
