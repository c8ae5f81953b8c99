"""SPEC §3 "Settlement", the Completion and Settlement precise readings: frozen period to the
millisecond, completion applied once, clawback from available, negative available.

S1 is enrolled alone (level 1 only); plan frozen 7 days, payout minimum 1 CNY. An order of
10000 at the default rate pays S1 460.
"""

import pytest

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, reasons, sharer_buckets

AT = T0 + DAY
DONE = T0 + 2 * DAY
FROZEN = 7 * DAY


def base(ev: Ev, frozen: int = 7) -> list:
    return [
        ev.plan(frozen=frozen, mins=[("CNY", 1), ("USD", 1)]),
        ev.enroll("S1"),
        ev.click("C1", "S1", "B1", AT - 1),
    ]


def sold(ev: Ev, order_id: str = "O1", at: int = AT, amount: int = 10_000) -> list:
    return [ev.order(order_id, "B1", at, [("L1", amount, None)])]


def buckets(ledger: InMemoryLedger) -> tuple[int, int, int, int]:
    b = sharer_buckets(ledger, "S1")
    return (b["pending"], b["available"], b["inflight"], b["paid"])


@pytest.mark.parametrize(
    ("as_of", "settled"),
    [(DONE + FROZEN, True), (DONE + FROZEN - 1, False), (DONE + FROZEN + 1, True), (DONE, False)],
    ids=["exactly-frozen", "1ms-early", "later", "at-completion"],
)
def test_settles_orders_completed_at_or_before_as_of_minus_frozen(
    as_of: int, settled: bool
) -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(base(ev) + sold(ev) + [ev.complete("O1", "B1", DONE), ev.run("RUN1", as_of)])
    assert ledger.rejected == []
    assert buckets(ledger) == ((0, 460, 0, 0) if settled else (460, 0, 0, 0))


def test_zero_frozen_days_settles_at_completion_time() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev, frozen=0) + sold(ev) + [ev.complete("O1", "B1", DONE), ev.run("RUN1", DONE)]
    )
    assert buckets(ledger) == (0, 460, 0, 0)


def test_only_orders_due_settle_others_stay_pending() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + sold(ev, "O1")
        + sold(ev, "O2", AT + 1, 20_000)
        + sold(ev, "O3", AT + 2)
        + [
            ev.complete("O1", "B1", DONE),
            ev.complete("O2", "B1", DONE + 1),
            ev.run("RUN1", DONE + FROZEN),
        ]
    )
    assert buckets(ledger) == (920 + 460, 460, 0, 0)  # O2 completed 1 ms too late, O3 never
    ledger.ingest([ev.run("RUN2", DONE + FROZEN + 1)])
    assert buckets(ledger) == (460, 460 + 920, 0, 0)


def test_completion_not_yet_applied_stays_pending_whatever_its_time() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev) + sold(ev) + [ev.run("RUN1", DONE + 30 * DAY), ev.complete("O1", "B1", DONE)]
    )
    assert buckets(ledger) == (460, 0, 0, 0)
    ledger.ingest([ev.run("RUN2", DONE + 30 * DAY)])
    assert buckets(ledger) == (0, 460, 0, 0)


def test_completion_before_its_order_waits_and_then_counts() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    done = ev.complete("O1", "B1", DONE)
    ledger.ingest(base(ev) + [done, ev.run("RUN1", DONE + FROZEN)])
    assert ledger.parked() == [done.event_id]
    ledger.ingest(sold(ev))
    assert ledger.parked() == [] and buckets(ledger) == (460, 0, 0, 0)
    ledger.ingest([ev.run("RUN2", DONE + FROZEN)])
    assert buckets(ledger) == (0, 460, 0, 0)


def test_an_order_completes_once() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + sold(ev)
        + [
            ev.complete("O1", "B1", DONE + 10 * DAY),
            ev.complete("O1", "B1", DONE, event_id="e-again"),  # an earlier time changes nothing
            ev.run("RUN1", DONE + FROZEN),
        ]
    )
    assert reasons(ledger) == {"e-again": "already_completed"}
    assert buckets(ledger) == (460, 0, 0, 0)


def test_settlement_moves_current_commission_and_settles_once() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + sold(ev)
        + [
            ev.refund("R1", "O1", "B1", [("L1", 5000)], DONE),
            ev.complete("O1", "B1", DONE),
            ev.run("RUN1", DONE + FROZEN),
            ev.run("RUN2", DONE + 2 * FROZEN),
        ]
    )
    assert buckets(ledger) == (0, 230, 0, 0)
    assert [e.kind for e in ledger.entries].count("settlement") == 1


def test_fully_refunded_order_settles_nothing() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + sold(ev)
        + [
            ev.refund("R1", "O1", "B1", [("L1", 10_000)], DONE),
            ev.complete("O1", "B1", DONE),
            ev.run("RUN1", DONE + FROZEN),
        ]
    )
    assert ledger.balances() == {}
    assert "settlement" not in [e.kind for e in ledger.entries]


def test_reversal_after_settlement_comes_out_of_available_whatever_its_time() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + sold(ev)
        + [
            ev.complete("O1", "B1", DONE),
            ev.run("RUN1", DONE + FROZEN),
            ev.refund("R1", "O1", "B1", [("L1", 5000)], DONE),  # timed before the run
        ]
    )
    assert buckets(ledger) == (0, 230, 0, 0)
    reversal = ledger.entries[-1]
    assert {p.account: p.amount for p in reversal.postings} == {
        "sharer:S1:available": -230,
        "platform:fees": -40,
        "merchant:M1:charges": 270,
    }


def clawed_back(ev: Ev) -> InMemoryLedger:
    """S1 settles 460, withdraws 400 (paid), then O1 is fully refunded: available −400."""
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + sold(ev)
        + [
            ev.complete("O1", "B1", DONE),
            ev.run("RUN1", DONE + FROZEN),
            ev.request("PAY1", "S1", 400, at=DONE + FROZEN + 1),
            ev.settled("PAY1", "S1", at=DONE + FROZEN + 2),
            ev.refund("R1", "O1", "B1", [("L1", 10_000)], DONE + FROZEN + 3),
        ]
    )
    assert ledger.rejected == []
    return ledger


def test_clawback_may_make_available_negative() -> None:
    ledger = clawed_back(Ev())
    assert buckets(ledger) == (0, -400, 0, 400)
    assert ledger.balance("platform:fees", "CNY") == 0
    assert ledger.balance("merchant:M1:charges", "CNY") == 0


def test_negative_available_is_not_netted_against_pending_nor_written_off() -> None:
    ev = Ev()
    ledger = clawed_back(ev)
    t = DONE + FROZEN + 10
    ledger.ingest(
        sold(ev, "O2", t, 20_000)
        + [
            ev.run("RUN2", t + 30 * DAY),  # O2 not completed: nothing to settle
            ev.request("PAY2", "S1", 1, at=t + 30 * DAY, event_id="e-blocked"),
        ]
    )
    assert reasons(ledger) == {"e-blocked": "insufficient_available"}
    assert buckets(ledger) == (920, -400, 0, 400)


def test_negative_available_is_recovered_from_later_earnings_before_payouts() -> None:
    ev = Ev()
    ledger = clawed_back(ev)
    t = DONE + FROZEN + 10
    ledger.ingest(
        sold(ev, "O2", t, 20_000)
        + [
            ev.complete("O2", "B1", t),
            ev.run("RUN2", t + FROZEN),
            ev.request("PAY2", "S1", 521, at=t + FROZEN + 1, event_id="e-over"),
            ev.request("PAY3", "S1", 520, at=t + FROZEN + 2),
        ]
    )
    assert reasons(ledger) == {"e-over": "insufficient_available"}
    assert buckets(ledger) == (0, 0, 520, 400)


def test_negative_available_in_one_currency_leaves_another_alone() -> None:
    ev = Ev()
    ledger = clawed_back(ev)
    t = DONE + FROZEN + 10
    ledger.ingest(
        [
            ev.order("O-usd", "B1", t, [("L1", 10_000, None)], currency="USD"),
            ev.complete("O-usd", "B1", t),
            ev.run("RUN2", t + FROZEN),
            ev.request("PAY-usd", "S1", 460, "USD", at=t + FROZEN + 1),
            ev.request("PAY-cny", "S1", 1, "CNY", at=t + FROZEN + 2, event_id="e-cny"),
        ]
    )
    assert reasons(ledger) == {"e-cny": "insufficient_available"}
    assert buckets(ledger) == (0, -400, 0, 400)
    assert sharer_buckets(ledger, "S1", "USD") == {
        "pending": 0,
        "available": 0,
        "inflight": 460,
        "paid": 0,
    }


def test_failed_payout_returns_to_available_even_after_a_clawback() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        base(ev)
        + sold(ev)
        + [
            ev.complete("O1", "B1", DONE),
            ev.run("RUN1", DONE + FROZEN),
            ev.request("PAY1", "S1", 300, at=DONE + FROZEN + 1),
            ev.refund("R1", "O1", "B1", [("L1", 10_000)], DONE + FROZEN + 2),
        ]
    )
    assert buckets(ledger) == (0, -300, 300, 0)
    ledger.ingest([ev.failed("PAY1", "S1", at=DONE + FROZEN + 3)])
    assert ledger.rejected == []
    assert ledger.balances() == {}


def test_settlement_of_an_order_that_earned_nothing_posts_nothing() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            ev.order("O1", "B1", AT),
            ev.complete("O1", "B1", DONE),
            ev.run("RUN1", DONE + FROZEN),
        ]
    )
    assert ledger.rejected == [] and ledger.entries == []
