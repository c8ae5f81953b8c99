"""SPEC §3 "Attribution" and its precise readings (window, ties, fallback, enrollment,
self-purchase, products).

Plan P1 from T0, window 30 days, self-purchase forbidden. SA, SB, SC are enrolled with no
upline; an order of 10000 at the default rate pays its level-1 sharer 460.
"""

import pytest

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, earned

ORDER_AT = T0 + 40 * DAY
WINDOW = 30 * DAY


def world(ev: Ev, **plan) -> list:
    return [ev.plan(**plan), ev.enroll("SA"), ev.enroll("SB"), ev.enroll("SC")]


def run(*events) -> InMemoryLedger:  # type: ignore[no-untyped-def]
    ledger = InMemoryLedger()
    ledger.ingest(events)
    assert ledger.rejected == []
    return ledger


def test_named_click_that_qualifies_wins_over_a_later_click() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT - 2 * DAY),
        ev.click("CB", "SB", "B1", ORDER_AT - DAY),
        ev.order("O1", "B1", ORDER_AT, click="CA"),
    )
    assert earned(ledger) == {"SA": 460}


def test_without_a_named_click_the_latest_click_wins_by_time_not_arrival() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CB", "SB", "B1", ORDER_AT - DAY),  # received first, but later in time
        ev.click("CA", "SA", "B1", ORDER_AT - 2 * DAY),
        ev.order("O1", "B1", ORDER_AT),
    )
    assert earned(ledger) == {"SB": 460}


def test_named_click_of_another_buyer_falls_back_to_the_buyers_latest() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT - 2 * DAY),
        ev.click("CB", "SB", "B2", ORDER_AT - DAY),  # B2's click
        ev.order("O1", "B1", ORDER_AT, click="CB"),
    )
    assert earned(ledger) == {"SA": 460}


def test_named_click_outside_the_window_falls_back_to_the_latest_in_window() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT - WINDOW - 1),
        ev.click("CB", "SB", "B1", ORDER_AT - 3 * DAY),
        ev.order("O1", "B1", ORDER_AT, click="CA"),
    )
    assert earned(ledger) == {"SB": 460}


def test_named_click_outside_the_window_and_no_other_click_earns_nothing() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT - WINDOW - 1),
        ev.order("O1", "B1", ORDER_AT, click="CA"),
    )
    assert ledger.entries == []


def test_named_click_after_the_order_falls_back_to_the_latest_before_it() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CB", "SB", "B1", ORDER_AT - DAY),
        ev.click("CA", "SA", "B1", ORDER_AT + 1),  # after the order: never qualifies
        ev.order("O1", "B1", ORDER_AT, click="CA"),
    )
    assert earned(ledger) == {"SB": 460}


def test_unknown_named_click_falls_back_and_the_order_never_waits() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CB", "SB", "B1", ORDER_AT - DAY),
        ev.order("O1", "B1", ORDER_AT, click="CA"),
    )
    assert ledger.parked() == []
    assert earned(ledger) == {"SB": 460}
    ledger.ingest([ev.click("CA", "SA", "B1", ORDER_AT - 1)])  # too late: O1 is priced
    assert ledger.rejected == []
    assert earned(ledger) == {"SB": 460}


@pytest.mark.parametrize("named", [False, True], ids=["latest", "named"])
@pytest.mark.parametrize(
    ("offset", "qualifies"),
    [(-WINDOW, True), (-WINDOW - 1, False), (0, True), (1, False), (-WINDOW + 1, True)],
    ids=["window-start", "1ms-before-window", "at-order", "1ms-after-order", "inside"],
)
def test_window_boundaries_are_inclusive_to_the_millisecond(
    offset: int, qualifies: bool, named: bool
) -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT + offset),
        ev.order("O1", "B1", ORDER_AT, click="CA" if named else None),
    )
    assert earned(ledger) == ({"SA": 460} if qualifies else {})


def test_window_in_days_is_86400000_ms_not_calendar_days() -> None:
    ev = Ev()
    ledger = run(
        *world(ev, window=1),
        ev.click("CA", "SA", "B1", ORDER_AT - 86_400_000),
        ev.click("CB", "SB", "B2", ORDER_AT - 86_400_001),
        ev.order("O1", "B1", ORDER_AT),
        ev.order("O2", "B2", ORDER_AT),
    )
    assert earned(ledger) == {"SA": 460}


def test_zero_day_window_admits_only_a_click_at_the_order_time() -> None:
    ev = Ev()
    ledger = run(
        *world(ev, window=0),
        ev.click("CA", "SA", "B1", ORDER_AT),
        ev.click("CB", "SB", "B2", ORDER_AT - 1),
        ev.order("O1", "B1", ORDER_AT),
        ev.order("O2", "B2", ORDER_AT),
    )
    assert earned(ledger) == {"SA": 460}


@pytest.mark.parametrize("first", ["SA", "SB", "SC"])
def test_tie_on_latest_time_goes_to_the_click_received_first(first: str) -> None:
    ev = Ev()
    others = [s for s in ("SA", "SB", "SC") if s != first]
    same = ORDER_AT - DAY
    ledger = run(
        *world(ev),
        ev.click("C-old", "SC" if first != "SC" else "SA", "B1", same - 1),
        ev.click(f"C-{first}", first, "B1", same),
        *[ev.click(f"C-{s}", s, "B1", same) for s in others],
        ev.order("O1", "B1", ORDER_AT),
    )
    assert earned(ledger) == {first: 460}


def test_tie_broken_by_receipt_across_batches() -> None:
    ev = Ev()
    ledger = run(*world(ev), ev.click("CB", "SB", "B1", ORDER_AT - DAY))
    ledger.ingest([ev.click("CA", "SA", "B1", ORDER_AT - DAY), ev.order("O1", "B1", ORDER_AT)])
    assert earned(ledger) == {"SB": 460}


def test_clicked_product_need_not_be_in_the_order() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT - DAY, product="Z-not-ordered"),
        ev.order("O1", "B1", ORDER_AT, [("L1", 10_000, None, 1, "P-other")], click="CA"),
    )
    assert earned(ledger) == {"SA": 460}


def test_no_click_earns_nothing() -> None:
    ev = Ev()
    ledger = run(
        *world(ev), ev.click("CA", "SA", "B2", ORDER_AT - DAY), ev.order("O1", "B1", ORDER_AT)
    )
    assert ledger.entries == []


def test_latest_click_by_an_unenrolled_sharer_earns_nothing_without_fallback() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT - 2 * DAY),
        ev.click("CX", "X", "B1", ORDER_AT - DAY),  # X never enrolled
        ev.order("O1", "B1", ORDER_AT),
    )
    assert ledger.entries == []


def test_named_click_by_an_unenrolled_sharer_earns_nothing_without_fallback() -> None:
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CX", "X", "B1", ORDER_AT - 2 * DAY),
        ev.click("CA", "SA", "B1", ORDER_AT - DAY),
        ev.order("O1", "B1", ORDER_AT, click="CX"),
    )
    assert ledger.entries == []


def test_a_click_counts_even_if_made_before_its_sharer_enrolled() -> None:
    ev = Ev()
    ledger = run(
        ev.plan(),
        ev.click("CN", "SN", "B1", ORDER_AT - DAY),
        ev.enroll("SN", at=ORDER_AT - 1),
        ev.order("O1", "B1", ORDER_AT),
    )
    assert earned(ledger) == {"SN": 460}


def test_sharer_whose_enrollment_arrives_after_the_order_earns_nothing() -> None:
    """Enrollments apply in arrival order: one timed before the order but received after
    it is not applied when the order is."""
    ev = Ev()
    ledger = run(
        ev.plan(),
        ev.click("CN", "SN", "B1", ORDER_AT - DAY),
        ev.order("O1", "B1", ORDER_AT),
        ev.enroll("SN", at=ORDER_AT - 2 * DAY),
    )
    assert ledger.entries == []


def test_sharer_whose_enrollment_waits_for_its_upline_earns_nothing() -> None:
    ev = Ev()
    ledger = run(
        ev.plan(),
        ev.enroll("SN", "UP"),  # waits: UP is not enrolled
        ev.click("CN", "SN", "B1", ORDER_AT - DAY),
        ev.order("O1", "B1", ORDER_AT),
    )
    assert ledger.entries == []


@pytest.mark.parametrize("named", [False, True], ids=["latest", "named"])
def test_self_purchase_forbidden_earns_nothing_and_does_not_fall_back(named: bool) -> None:
    ev = Ev()
    ledger = run(
        *world(ev, self_ok=False),
        ev.click("CB", "SB", "SA", ORDER_AT - 2 * DAY),  # another sharer's older click
        ev.click("CA", "SA", "SA", ORDER_AT - DAY),  # SA buys through its own link
        ev.order("O1", "SA", ORDER_AT, click="CA" if named else None),
    )
    assert ledger.entries == []


def test_self_purchase_is_tested_on_the_attributed_click_only() -> None:
    ev = Ev()
    ledger = run(
        *world(ev, self_ok=False),
        ev.click("CA", "SA", "SA", ORDER_AT - 2 * DAY),  # SA's own older click
        ev.click("CB", "SB", "SA", ORDER_AT - DAY),
        ev.order("O1", "SA", ORDER_AT),
    )
    assert earned(ledger) == {"SB": 460}


def test_self_purchase_allowed_pays_the_buyer_as_sharer() -> None:
    ev = Ev()
    ledger = run(
        ev.plan(self_ok=True),
        ev.enroll("SB"),
        ev.enroll("SA", "SB"),
        ev.click("CA", "SA", "SA", ORDER_AT - DAY),
        ev.order("O1", "SA", ORDER_AT),
    )
    assert earned(ledger) == {"SA": 460, "SB": 276}


def test_attribution_is_per_order() -> None:
    """Each order of one buyer is attributed on its own: a later click changes later orders."""
    ev = Ev()
    ledger = run(
        *world(ev),
        ev.click("CA", "SA", "B1", ORDER_AT - DAY),
        ev.order("O1", "B1", ORDER_AT),
        ev.click("CB", "SB", "B1", ORDER_AT + 1),
        ev.order("O2", "B1", ORDER_AT + 2),
    )
    assert earned(ledger) == {"SA": 460, "SB": 460}


def test_a_click_from_an_earlier_batch_still_attributes() -> None:
    """Batches are a transport detail: a click ingested in one batch attributes an order
    ingested in the next."""
    ev = Ev()
    ledger = run(*world(ev), ev.click("CA", "SA", "B1", ORDER_AT - DAY))
    ledger.ingest([ev.order("O1", "B1", ORDER_AT)])
    assert earned(ledger) == {"SA": 460}


def test_a_named_click_from_an_earlier_batch_still_attributes() -> None:
    ev = Ev()
    ledger = run(*world(ev), ev.click("CA", "SA", "B1", ORDER_AT - DAY))
    ledger.ingest(
        [ev.click("CB", "SB", "B1", ORDER_AT - 1), ev.order("O1", "B1", ORDER_AT, click="CA")]
    )
    assert earned(ledger) == {"SA": 460}
