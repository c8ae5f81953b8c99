"""SPEC §2 and the Ids precise reading: reused order/click/refund/payout ids under another
event_id are rejected (``duplicate_…``); the same event_id again is a no-op whatever its
content. Plus SPEC §4.6: every rejection leaves the events behind it applied."""

import pytest

from ledger.domain.memory import InMemoryLedger
from ledger.domain.processor import Duplicate
from tests.support.streams import DAY, T0, Ev, earned, reasons, sharer_buckets

AT = T0 + DAY
READY = T0 + 20 * DAY


def setup(ev: Ev) -> list:
    """S1 (upline S2) earns O1 (460 + 276), completed and settled; SB is enrolled too."""
    return [
        ev.plan(mins=[("CNY", 1)]),
        ev.enroll("S2"),
        ev.enroll("S1", "S2"),
        ev.enroll("SB"),
        ev.click("C1", "S1", "B1", AT - 2, event_id="e-click"),
        ev.order("O1", "B1", AT, event_id="e-order"),
        ev.complete("O1", "B1", AT + 1),
        ev.run("RUN1", READY),
        ev.request("PAY1", "S1", 100, at=READY + 1, event_id="e-pay"),
        ev.order("O2", "B1", AT + 2, [("L1", 20_000, None)]),
        ev.refund("R1", "O2", "B1", [("L1", 10_000)], AT + 3, event_id="e-refund"),
    ]


def fresh(events: list) -> InMemoryLedger:  # type: ignore[type-arg]
    ledger = InMemoryLedger()
    ledger.ingest(events)
    assert ledger.rejected == [], ledger.rejected
    return ledger


def test_duplicate_order_id_is_rejected_and_the_first_order_stands() -> None:
    ev = Ev()
    ledger = fresh(setup(ev))
    before = ledger.balances()
    ledger.ingest(
        [ev.order("O1", "B1", AT + 5, [("L1", 99_999, None)], merchant="M2", event_id="e-dup")]
    )
    assert reasons(ledger) == {"e-dup": "duplicate_order_id"}
    assert ledger.balances() == before
    ledger.ingest([ev.refund("R2", "O1", "B1", [("L1", 10_000)], AT + 6)])  # O1's own lines
    assert len(ledger.rejected) == 1


def test_duplicate_click_id_is_rejected_and_the_first_click_stands() -> None:
    ev = Ev()
    ledger = fresh(setup(ev))
    ledger.ingest(
        [
            ev.click("C1", "SB", "B1", AT + 10, event_id="e-dup"),
            ev.order("O3", "B1", AT + 11, click="C1"),
        ]
    )
    assert reasons(ledger) == {"e-dup": "duplicate_click_id"}
    # O3 goes to C1's real sharer S1 (the rejected copy was later and by SB)
    assert earned(ledger)["S1"] == 460 + 460 and "SB" not in earned(ledger)  # O2 rest + O3


def test_duplicate_refund_id_is_rejected() -> None:
    ev = Ev()
    ledger = fresh(setup(ev))
    before = ledger.balances()
    ledger.ingest([ev.refund("R1", "O2", "B1", [("L1", 1)], AT + 4, event_id="e-dup")])
    assert reasons(ledger) == {"e-dup": "duplicate_refund_id"}
    assert ledger.balances() == before


def test_duplicate_payout_id_is_rejected() -> None:
    ev = Ev()
    ledger = fresh(setup(ev))
    before = ledger.balances()
    ledger.ingest([ev.request("PAY1", "S1", 50, at=READY + 2, event_id="e-dup")])
    assert reasons(ledger) == {"e-dup": "duplicate_payout_id"}
    assert ledger.balances() == before


def variants(ev: Ev) -> dict[str, object]:
    """Events reusing an event_id of ``setup`` with different content (even another type)."""
    return {
        "order-other-content": ev.order(
            "O9", "B1", AT + 9, [("L1", 50_000, 10_000)], event_id="e-order"
        ),
        "order-as-click": ev.click("C9", "SB", "B1", AT + 9, event_id="e-order"),
        "click-other-sharer": ev.click("C1", "SB", "B1", AT - 1, event_id="e-click"),
        "payout-other-amount": ev.request("PAY1", "S1", 1, at=READY + 9, event_id="e-pay"),
        "payout-as-failed": ev.failed("PAY1", "S1", at=READY + 9, event_id="e-pay"),
        "refund-more": ev.refund("R1", "O2", "B1", [("L1", 10_000)], AT + 9, event_id="e-refund"),
        "refund-as-enroll": ev.enroll("S9", "S1", event_id="e-refund"),
        "plan-again": ev.plan("P9", T0 + 3 * DAY, rate=10_000, event_id="e1"),
    }


@pytest.mark.parametrize("name", sorted(variants(Ev())))
def test_same_event_id_again_is_a_noop_whatever_its_content(name: str) -> None:
    ev = Ev()
    ledger = fresh(setup(ev))
    entries, balances = list(ledger.entries), ledger.balances()
    results = ledger.ingest([variants(ev)[name]])
    assert [type(r.outcome) for r in results] == [Duplicate]
    assert ledger.entries == entries and ledger.balances() == balances
    assert ledger.rejected == [] and ledger.parked() == []


def test_exact_redelivery_of_every_event_is_a_noop() -> None:
    ev = Ev()
    events = setup(ev)
    ledger = fresh(events)
    entries = list(ledger.entries)
    ledger.ingest(events + list(reversed(events)))
    assert ledger.entries == entries and ledger.rejected == []


def test_redelivered_rejection_is_not_dead_lettered_twice() -> None:
    ev = Ev()
    ledger = fresh(setup(ev))
    bad = ev.request("PAY2", "S1", 10**9, at=READY + 3)
    ledger.ingest([bad, bad])
    ledger.ingest([bad])
    assert reasons(ledger) == {bad.event_id: "insufficient_available"}
    assert len(ledger.rejected) == 1


def test_redelivered_waiting_event_applies_once_when_released() -> None:
    ev = Ev()
    ledger = fresh(setup(ev))
    early = ev.refund("R7", "O7", "B1", [("L1", 5000)], AT + 20)
    ledger.ingest([early, early])
    assert ledger.parked() == [early.event_id]
    ledger.ingest([early, ev.order("O7", "B1", AT + 19), early])
    assert ledger.parked() == [] and ledger.rejected == []
    assert [e.kind for e in ledger.entries if e.order_id == "O7"] == ["accrual", "reversal"]


# --- every rejection leaves the events behind it applied --------------------------------


def rejections(ev: Ev) -> list[tuple[str, object, str]]:
    """(name, a bad event for ``setup``'s world, its reason)."""
    return [
        ("dup-plan-id", ev.plan("P1", T0 + 50 * DAY), "duplicate_plan_id"),
        ("dup-effective-from", ev.plan("P7", T0), "duplicate_effective_from"),
        ("reenroll", ev.enroll("S1"), "already_enrolled"),
        ("self-upline", ev.enroll("S7", "S7"), "enrollment_cycle"),
        ("dup-click", ev.click("C1", "SB", "B1", AT), "duplicate_click_id"),
        ("dup-order", ev.order("O1", "B1", AT), "duplicate_order_id"),
        ("completed-twice", ev.complete("O1", "B1", AT + 2), "already_completed"),
        ("over-refund", ev.refund("R5", "O2", "B1", [("L1", 10_001)], AT + 5), "over_refund"),
        ("unknown-line", ev.refund("R5", "O2", "B1", [("LX", 1)], AT + 5), "unknown_line"),
        ("zero-refund", ev.refund("R5", "O2", "B1", [("L1", 0)], AT + 5), "invalid_refund_amount"),
        ("dup-refund", ev.refund("R1", "O2", "B1", [("L1", 1)], AT + 5), "duplicate_refund_id"),
        ("payout-zero", ev.request("PAY5", "S1", 0, at=READY + 5), "invalid_amount"),
        ("payout-too-big", ev.request("PAY5", "S1", 361, at=READY + 5), "insufficient_available"),
        ("payout-currency", ev.request("PAY5", "S1", 1, "USD", at=READY + 5), "unknown_currency"),
        ("payout-no-plan", ev.request("PAY5", "S1", 1, at=T0 - 1), "no_plan_in_force"),
        ("dup-payout", ev.request("PAY1", "S1", 1, at=READY + 5), "duplicate_payout_id"),
        ("payout-mismatch", ev.settled("PAY1", "S1", at=READY + 5, amount=99), "payout_mismatch"),
        ("malformed", ev.click("", "S1", "B1", AT), "invalid_value"),
    ]


@pytest.mark.parametrize(
    "index", range(len(rejections(Ev()))), ids=[name for name, _, _ in rejections(Ev())]
)
def test_rejection_has_its_reason_posts_nothing_and_later_events_still_apply(index: int) -> None:
    ev = Ev()
    events = setup(ev)
    _, bad, reason = rejections(ev)[index]
    after = [  # a fresh sale by SB, and a payout of S1's whole available 360
        ev.click("C-after", "SB", "B-after", READY + 10),
        ev.order("O-after", "B-after", READY + 11),
        ev.request("PAY-after", "S1", 360, at=READY + 12),
    ]
    ledger = InMemoryLedger()
    ledger.ingest(events + [bad] + after)
    assert ledger.rejected == [(bad.event_id, reason, ledger.rejected[0][2])]  # type: ignore[attr-defined]
    assert not [e for e in ledger.entries if e.event_id == bad.event_id]  # type: ignore[attr-defined]
    assert earned(ledger)["SB"] == 460
    assert sharer_buckets(ledger, "S1")["available"] == 0
