"""SPEC §3 "Payouts" and its precise readings: two phases, amount checks, the minimum and
currency of the plan in force at the request, settled/failed rules, waiting (§4.6).

S1 has 460 CNY available at READY (plan minimum 100 CNY, 10 USD).
"""

import pytest

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, reasons, sharer_buckets

READY = T0 + 20 * DAY


def ready(ev: Ev, **plan) -> InMemoryLedger:  # type: ignore[no-untyped-def]
    plan.setdefault("mins", [("CNY", 100), ("USD", 10)])
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(**plan),
            ev.enroll("S1"),
            ev.click("C1", "S1", "B1", T0 + 1),
            ev.order("O1", "B1", T0 + DAY),
            ev.complete("O1", "B1", T0 + 2 * DAY),
            ev.run("RUN1", READY),
        ]
    )
    assert ledger.rejected == []
    assert buckets(ledger) == (0, 460, 0, 0)
    return ledger


def buckets(ledger: InMemoryLedger, currency: str = "CNY") -> tuple[int, int, int, int]:
    b = sharer_buckets(ledger, "S1", currency)
    return (b["pending"], b["available"], b["inflight"], b["paid"])


def test_request_moves_available_to_inflight_and_settled_moves_it_to_paid() -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest([ev.request("PAY1", "S1", 300, at=READY + 1)])
    assert buckets(ledger) == (0, 160, 300, 0)
    ledger.ingest([ev.settled("PAY1", "S1", at=READY + 2, amount=300, currency="CNY")])
    assert buckets(ledger) == (0, 160, 0, 300)
    assert [e.kind for e in ledger.entries[-2:]] == ["payout_requested", "payout_settled"]


def test_failed_moves_inflight_back_to_available() -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest(
        [ev.request("PAY1", "S1", 300, at=READY + 1), ev.failed("PAY1", "S1", at=READY + 2)]
    )
    assert ledger.rejected == []
    assert buckets(ledger) == (0, 460, 0, 0)
    ledger.ingest([ev.request("PAY2", "S1", 460, at=READY + 3)])  # available again
    assert buckets(ledger) == (0, 0, 460, 0)


@pytest.mark.parametrize("amount", [0, -1, -460])
def test_amount_must_be_positive(amount: int) -> None:
    ev = Ev()
    ledger = ready(ev, mins=[("CNY", 0)])
    ledger.ingest(
        [
            ev.request("PAY1", "S1", amount, at=READY + 1, event_id="e-bad"),
            ev.request("PAY2", "S1", 1, at=READY + 2),
        ]
    )
    assert reasons(ledger) == {"e-bad": "invalid_amount"}
    assert buckets(ledger) == (0, 459, 1, 0)


@pytest.mark.parametrize(("amount", "ok"), [(460, True), (461, False)])
def test_request_above_available_is_rejected(amount: int, ok: bool) -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest([ev.request("PAY1", "S1", amount, at=READY + 1, event_id="e-pay")])
    if ok:
        assert ledger.rejected == [] and buckets(ledger) == (0, 0, 460, 0)
    else:
        assert reasons(ledger) == {"e-pay": "insufficient_available"}
        assert buckets(ledger) == (0, 460, 0, 0)


def test_available_counts_earlier_inflight_requests() -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest(
        [
            ev.request("PAY1", "S1", 300, at=READY + 1),
            ev.request("PAY2", "S1", 161, at=READY + 2, event_id="e-pay2"),
            ev.request("PAY3", "S1", 160, at=READY + 3),
            ev.request("PAY4", "S1", 100, at=READY + 4, event_id="e-pay4"),
        ]
    )
    assert reasons(ledger) == {
        "e-pay2": "insufficient_available",
        "e-pay4": "insufficient_available",
    }
    assert buckets(ledger) == (0, 0, 460, 0)


@pytest.mark.parametrize(("amount", "ok"), [(99, False), (100, True)])
def test_request_under_the_minimum_is_rejected(amount: int, ok: bool) -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest([ev.request("PAY1", "S1", amount, at=READY + 1, event_id="e-pay")])
    if ok:
        assert ledger.rejected == [] and buckets(ledger) == (0, 360, 100, 0)
    else:
        assert reasons(ledger) == {"e-pay": "below_minimum"}
        assert buckets(ledger) == (0, 460, 0, 0)


def test_currency_not_listed_by_the_plan_cannot_be_paid_out() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(mins=[("CNY", 100)]),
            ev.enroll("S1"),
            ev.click("C1", "S1", "B1", T0 + 1),
            ev.order("O1", "B1", T0 + DAY, currency="EUR"),
            ev.complete("O1", "B1", T0 + 2 * DAY),
            ev.run("RUN1", READY),
            ev.request("PAY1", "S1", 400, "EUR", at=READY + 1, event_id="e-eur"),
        ]
    )
    assert buckets(ledger, "EUR") == (0, 460, 0, 0)  # EUR orders earn; only payout is refused
    assert reasons(ledger) == {"e-eur": "unknown_currency"}


def test_minimum_and_currencies_come_from_the_plan_in_force_at_the_request() -> None:
    ev = Ev()
    ledger = ready(ev)
    p2_from = READY + 10 * DAY
    ledger.ingest(
        [
            ev.plan("P2", p2_from, mins=[("CNY", 400)]),
            ev.request("PAY1", "S1", 200, at=p2_from - 1),  # P1: minimum 100
            ev.request("PAY2", "S1", 200, at=p2_from, event_id="e-min"),  # P2: minimum 400
            ev.request("PAY3", "S1", 10, "USD", at=p2_from + 1, event_id="e-usd"),  # P2: no USD
        ]
    )
    assert reasons(ledger) == {"e-min": "below_minimum", "e-usd": "unknown_currency"}
    assert buckets(ledger) == (0, 260, 200, 0)


def test_request_when_no_plan_is_in_force_is_rejected() -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest(
        [
            ev.request("PAY1", "S1", 200, at=T0 - 1, event_id="e-early"),
            ev.request("PAY2", "S1", 200, at=READY + 1),
        ]
    )
    assert reasons(ledger) == {"e-early": "no_plan_in_force"}
    assert buckets(ledger) == (0, 260, 200, 0)


@pytest.mark.parametrize("end", ["settled", "failed"])
def test_ending_a_rejected_request_is_rejected(end: str) -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest(
        [
            ev.request("PAY1", "S1", 999, at=READY + 1, event_id="e-req"),
            getattr(ev, end)("PAY1", "S1", at=READY + 2, event_id="e-end"),
            ev.request("PAY2", "S1", 100, at=READY + 3),
        ]
    )
    assert reasons(ledger) == {"e-req": "insufficient_available", "e-end": "payout_not_inflight"}
    assert buckets(ledger) == (0, 360, 100, 0)


@pytest.mark.parametrize("end", ["settled", "failed"])
def test_ending_a_request_rejected_as_malformed_is_rejected_not_left_waiting(end: str) -> None:
    """A request dead-lettered as malformed (currency 'cny' is not ISO 4217) is still a
    request that was seen and rejected: ending it is rejected rather than parked forever."""
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest(
        [
            ev.request("PAY1", "S1", 100, "cny", at=READY + 1, event_id="e-req"),
            getattr(ev, end)("PAY1", "S1", at=READY + 2, event_id="e-end"),
        ]
    )
    assert reasons(ledger)["e-req"] == "invalid_value"
    assert ledger.parked() == []
    assert "e-end" in reasons(ledger)


@pytest.mark.parametrize(
    ("first", "second"),
    [("settled", "failed"), ("failed", "settled"), ("settled", "settled"), ("failed", "failed")],
)
def test_ending_an_ended_payout_is_rejected(first: str, second: str) -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest(
        [
            ev.request("PAY1", "S1", 300, at=READY + 1),
            getattr(ev, first)("PAY1", "S1", at=READY + 2),
            getattr(ev, second)("PAY1", "S1", at=READY + 3, event_id="e-again"),
        ]
    )
    assert reasons(ledger) == {"e-again": "payout_not_inflight"}
    assert buckets(ledger) == ((0, 160, 0, 300) if first == "settled" else (0, 460, 0, 0))


@pytest.mark.parametrize(
    ("end", "after"), [("settled", (0, 160, 0, 300)), ("failed", (0, 460, 0, 0))]
)
def test_ending_before_the_request_waits_then_applies(end: str, after: tuple) -> None:  # type: ignore[type-arg]
    ev = Ev()
    ledger = ready(ev)
    early = getattr(ev, end)("PAY1", "S1", at=READY + 2, amount=300, currency="CNY")
    ledger.ingest([early])
    assert ledger.parked() == [early.event_id]
    assert buckets(ledger) == (0, 460, 0, 0)
    ledger.ingest([ev.request("PAY1", "S1", 300, at=READY + 1)])
    assert ledger.parked() == [] and ledger.rejected == []
    assert buckets(ledger) == after


def test_ending_that_waited_for_a_request_that_is_rejected_is_rejected() -> None:
    ev = Ev()
    ledger = ready(ev)
    early = ev.settled("PAY1", "S1", at=READY + 2, event_id="e-end")
    ledger.ingest([early, ev.request("PAY1", "S1", 5000, at=READY + 1, event_id="e-req")])
    assert ledger.parked() == []
    assert reasons(ledger) == {"e-req": "insufficient_available", "e-end": "payout_not_inflight"}
    assert buckets(ledger) == (0, 460, 0, 0)


@pytest.mark.parametrize("end", ["settled", "failed"])
@pytest.mark.parametrize(
    "wrong",
    [{"sharer": "S2"}, {"amount": 299}, {"amount": 301}, {"currency": "USD"}],
    ids=["sharer", "amount-low", "amount-high", "currency"],
)
def test_ending_with_mismatching_details_is_rejected(end: str, wrong: dict) -> None:  # type: ignore[type-arg]
    ev = Ev()
    ledger = ready(ev)
    sharer = wrong.get("sharer", "S1")
    ledger.ingest(
        [
            ev.request("PAY1", "S1", 300, at=READY + 1),
            getattr(ev, end)(
                "PAY1",
                sharer,
                at=READY + 2,
                amount=wrong.get("amount"),
                currency=wrong.get("currency"),
                event_id="e-bad",
            ),
        ]
    )
    assert reasons(ledger) == {"e-bad": "payout_mismatch"}
    assert buckets(ledger) == (0, 160, 300, 0)  # still in flight
    ledger.ingest([getattr(ev, end)("PAY1", "S1", at=READY + 3, amount=300, currency="CNY")])
    assert len(ledger.rejected) == 1
    assert buckets(ledger) == ((0, 160, 0, 300) if end == "settled" else (0, 460, 0, 0))


def test_duplicate_payout_id_is_rejected_and_changes_nothing() -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest(
        [
            ev.request("PAY1", "S1", 300, at=READY + 1),
            ev.request("PAY1", "S1", 100, at=READY + 2, event_id="e-dup"),
            ev.settled("PAY1", "S1", at=READY + 3, amount=300),
        ]
    )
    assert reasons(ledger) == {"e-dup": "duplicate_payout_id"}
    assert buckets(ledger) == (0, 160, 0, 300)


def test_payout_of_a_sharer_with_nothing_available_is_rejected() -> None:
    ev = Ev()
    ledger = ready(ev)
    ledger.ingest([ev.request("PAY1", "S9", 100, at=READY + 1, event_id="e-s9")])
    assert reasons(ledger) == {"e-s9": "insufficient_available"}
