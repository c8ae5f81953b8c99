"""SPEC §3 "Currencies never mix": every balance is per (sharer, currency); minimums and
available are per currency; an entry carries one currency."""

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, reasons, sharer_buckets

AT = T0 + DAY
READY = T0 + 20 * DAY


def two_currencies(ev: Ev) -> InMemoryLedger:
    """S1 (upline S2) earns 460 CNY and 46 USD, both settled. Minimums: CNY 100, USD 10."""
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(mins=[("CNY", 100), ("USD", 10)]),
            ev.enroll("S2"),
            ev.enroll("S1", "S2"),
            ev.click("C1", "S1", "B1", AT - 1),
            ev.order("O-cny", "B1", AT, [("L1", 10_000, None)], currency="CNY"),
            ev.order("O-usd", "B1", AT + 1, [("L1", 1_000, None)], currency="USD"),
            ev.complete("O-cny", "B1", AT + 2),
            ev.complete("O-usd", "B1", AT + 2),
            ev.run("RUN1", READY),
        ]
    )
    assert ledger.rejected == []
    return ledger


def test_balances_are_kept_per_currency() -> None:
    ledger = two_currencies(Ev())
    assert ledger.balances() == {
        ("sharer:S1:available", "CNY"): 460,
        ("sharer:S2:available", "CNY"): 276,
        ("platform:fees", "CNY"): 80,
        ("merchant:M1:charges", "CNY"): -816,
        ("sharer:S1:available", "USD"): 46,
        ("sharer:S2:available", "USD"): 27,
        ("platform:fees", "USD"): 8,
        ("merchant:M1:charges", "USD"): -81,
    }


def test_every_entry_carries_one_currency_and_balances_in_it() -> None:
    ledger = two_currencies(Ev())
    for entry in ledger.entries:
        assert len({p.currency for p in entry.postings}) == 1
        assert sum(p.amount for p in entry.postings) == 0


def test_minimums_are_per_currency() -> None:
    ev = Ev()
    ledger = two_currencies(ev)
    ledger.ingest(
        [
            ev.request("P-usd", "S1", 10, "USD", at=READY + 1),
            ev.request("P-cny", "S1", 10, "CNY", at=READY + 2, event_id="e-cny"),
        ]
    )
    assert reasons(ledger) == {"e-cny": "below_minimum"}
    assert sharer_buckets(ledger, "S1", "USD")["inflight"] == 10


def test_available_is_per_currency() -> None:
    ev = Ev()
    ledger = two_currencies(ev)
    ledger.ingest(
        [
            ev.request("P-usd", "S1", 47, "USD", at=READY + 1, event_id="e-usd"),
            ev.request("P-usd2", "S1", 46, "USD", at=READY + 2),
            ev.request("P-cny", "S1", 460, "CNY", at=READY + 3),
        ]
    )
    assert reasons(ledger) == {"e-usd": "insufficient_available"}
    assert sharer_buckets(ledger, "S1", "USD") == {
        "pending": 0,
        "available": 0,
        "inflight": 46,
        "paid": 0,
    }
    assert sharer_buckets(ledger, "S1", "CNY") == {
        "pending": 0,
        "available": 0,
        "inflight": 460,
        "paid": 0,
    }


def test_payout_ending_in_another_currency_is_a_mismatch() -> None:
    ev = Ev()
    ledger = two_currencies(ev)
    ledger.ingest(
        [
            ev.request("P1", "S1", 40, "USD", at=READY + 1),
            ev.settled("P1", "S1", at=READY + 2, amount=40, currency="CNY", event_id="e-x"),
        ]
    )
    assert reasons(ledger) == {"e-x": "payout_mismatch"}
    assert sharer_buckets(ledger, "S1", "CNY")["paid"] == 0


def test_clawback_in_one_currency_never_touches_the_other() -> None:
    ev = Ev()
    ledger = two_currencies(ev)
    ledger.ingest(
        [
            ev.request("P1", "S1", 400, "CNY", at=READY + 1),
            ev.refund("R1", "O-cny", "B1", [("L1", 10_000)], READY + 2),
        ]
    )
    assert sharer_buckets(ledger, "S1", "CNY") == {
        "pending": 0,
        "available": -400,
        "inflight": 400,
        "paid": 0,
    }
    assert sharer_buckets(ledger, "S1", "USD")["available"] == 46
    ledger.ingest([ev.request("P2", "S1", 46, "USD", at=READY + 3)])
    assert ledger.rejected == []
