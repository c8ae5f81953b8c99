"""SPEC §3 "Bounds": amounts and totals at most 10^15 minor units (validation,
``invalid_value``), no account beyond ±2^62 (``balance_out_of_range``), and the settlement
reading ``as_of_in_future``. Balances near the bound come from a loader that says an
account already holds them, as a database would after years of postings."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from ledger.domain.entries import JournalEntry, Posting
from ledger.domain.memory import InMemoryLedger
from ledger.domain.model import Sharer
from ledger.domain.state import BALANCE_BOUND, NothingLoader, WorkingState
from ledger.domain.validation import MAX_AMOUNT, MAX_LINES, problem
from tests.support.streams import DAY, T0, Ev, reasons, sharer_buckets

AT = T0 + DAY
DONE = T0 + 2 * DAY
READY = DONE + 7 * DAY


class Committed(NothingLoader):
    """A loader whose committed balances are ``held`` (account, currency) -> amount."""

    def __init__(self, held: dict[tuple[str, str], int]) -> None:
        self.held = held

    def balances(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        return {k: self.held[k] for k in keys if k in self.held}


def ledger_holding(held: dict[tuple[str, str], int]) -> InMemoryLedger:
    ledger = InMemoryLedger()
    ledger.state = WorkingState(Committed(held))
    return ledger


def sale(ev: Ev, order_id: str = "O1", amount: int = 10_000, merchant: str = "M1") -> list:
    return [ev.order(order_id, "B1", AT, [("L1", amount, None)], merchant=merchant)]


def setup(ev: Ev) -> list:
    return [ev.plan(mins=[("CNY", 1)]), ev.enroll("S1"), ev.click("C1", "S1", "B1", AT - 1)]


# --- 10^15: validation -------------------------------------------------------------------


def test_an_order_of_lines_each_in_range_but_a_total_over_10_15_is_invalid() -> None:
    """10,000 lines at the per-line maximum passed validation and then
    overflowed int64 in the postings."""
    ev = Ev()
    lines = [(f"L{n}", MAX_AMOUNT, 10_000) for n in range(MAX_LINES)]
    ledger = InMemoryLedger()
    ledger.ingest([*setup(ev), ev.order("O1", "B1", AT, lines, event_id="e-big"), *sale(ev, "O2")])
    assert reasons(ledger) == {"e-big": "invalid_value"}
    assert "total" in ledger.rejected[0][2]
    assert sharer_buckets(ledger, "S1")["pending"] == 460  # O2 applied behind it


def test_an_order_total_of_exactly_10_15_applies_and_one_more_does_not() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    half = MAX_AMOUNT // 2
    ledger.ingest(
        [
            *setup(ev),
            ev.order("O1", "B1", AT, [("L1", half, 10_000), ("L2", half, 10_000)], event_id="e-ok"),
            ev.order(
                "O2", "B1", AT, [("L1", half, 10_000), ("L2", half + 1, 10_000)], event_id="e-over"
            ),
        ]
    )
    assert reasons(ledger) == {"e-over": "invalid_value"}
    # pool 10^15: fee 8·10^13 + level 1 (S1 alone) 4.6·10^14
    assert ledger.balance("merchant:M1:charges", "CNY") == -540_000_000_000_000


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (
            lambda ev: ev.order("O1", "B1", AT, [(f"L{n}", 0, None) for n in range(MAX_LINES + 1)]),
            "lines",
        ),
        (lambda ev: ev.refund("R1", "O1", "B1", [("L1", MAX_AMOUNT + 1)], AT), "amount"),
        (lambda ev: ev.refund("R1", "O1", "B1", [("L1", MAX_AMOUNT), ("L2", 1)], AT), "total"),
        (lambda ev: ev.request("PAY1", "S1", MAX_AMOUNT + 1, at=AT), "amount"),
        (lambda ev: ev.request("PAY1", "S1", -(10**30), at=AT), "amount"),
        (lambda ev: ev.settled("PAY1", "S1", at=AT, amount=2**70), "amount"),
    ],
    ids=[
        "order-lines",
        "refund-line",
        "refund-total",
        "payout",
        "payout-negative",
        "payout-settled",
    ],
)
def test_amounts_past_the_bounds_are_invalid(build, field: str) -> None:  # type: ignore[no-untyped-def]
    bad = problem(build(Ev()))
    assert bad is not None and bad[0] == "invalid_value" and field in bad[1], bad


def test_a_huge_negative_payout_is_a_dead_letter_not_a_row_the_database_refuses() -> None:
    """Before the bound, −10^30 reached the engine, was rejected ``invalid_amount`` and
    stored as a rejected payout whose amount no BIGINT column holds."""
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest([ev.plan(), ev.request("PAY1", "S1", -(10**30), at=AT, event_id="e-neg")])
    assert reasons(ledger) == {"e-neg": "invalid_value"}
    assert all(abs(p.amount) <= MAX_AMOUNT for p in ledger.state.changes().new_payouts)


# --- ±2^62: the engine, against the balances it holds ---------------------------------------


def test_an_accrual_that_takes_the_merchant_past_minus_2_62_is_rejected() -> None:
    ev = Ev()
    ledger = ledger_holding({("merchant:M1:charges", "CNY"): -BALANCE_BOUND + 1000})
    ledger.ingest(
        [
            *setup(ev),
            *sale(ev, "O1", 10_000),
            *sale(ev, "O2", 10_000),
            *sale(ev, "O3", 10_000, merchant="M2"),
        ]
    )
    # each order charges M1 540 (fee 80 + S1's 460): O1 fits, O2 would pass −2^62 by 80
    assert reasons(ledger) == {"e5": "balance_out_of_range"}
    assert "merchant:M1:charges" in ledger.rejected[0][2]
    assert ledger.state.order("O2") is None  # a rejected event leaves no trace
    assert sharer_buckets(ledger, "S1")["pending"] == 2 * 460  # O1 and O3


def test_a_sharer_pending_past_2_62_rejects_the_order() -> None:
    ev = Ev()
    ledger = ledger_holding({("sharer:S1:pending", "CNY"): BALANCE_BOUND - 459})
    ledger.ingest([*setup(ev), *sale(ev)])
    assert reasons(ledger) == {"e4": "balance_out_of_range"}


def settled_once(ev: Ev) -> list:
    return [*setup(ev), *sale(ev), ev.complete("O1", "B1", DONE), ev.run("RUN1", READY)]


def test_a_settlement_that_takes_available_past_2_62_is_rejected_whole() -> None:
    ev = Ev()
    ledger = ledger_holding({("sharer:S1:available", "CNY"): BALANCE_BOUND - 459})
    ledger.ingest(settled_once(ev))
    assert reasons(ledger) == {"e6": "balance_out_of_range"}
    assert not ledger.state.run_seen("RUN1")  # the run id is free for a later run
    assert ledger.state.order("O1").settled_by is None  # type: ignore[union-attr]


def test_a_clawback_that_takes_available_past_minus_2_62_is_rejected() -> None:
    ev = Ev()
    ledger = ledger_holding({("sharer:S1:available", "CNY"): -BALANCE_BOUND - 460 + 100})
    ledger.ingest(settled_once(ev))  # available: -2^62 + 100
    ledger.ingest([ev.refund("R1", "O1", "B1", [("L1", 10_000)], AT, event_id="e-claw")])
    assert reasons(ledger) == {"e-claw": "balance_out_of_range"}
    assert ledger.state.order("O1").lines["L1"].refunded == 0  # type: ignore[union-attr]
    assert not ledger.state.refund_seen("R1")


@pytest.mark.parametrize(
    ("account", "end"), [("inflight", None), ("paid", "settled"), ("available", "failed")]
)
def test_payouts_that_take_a_bucket_past_2_62_are_rejected(account: str, end: str | None) -> None:
    ev = Ev()
    held = {(f"sharer:S1:{account}", "CNY"): BALANCE_BOUND - 99}
    if account == "available":  # room for the request, none for the failed payout's return
        held[("sharer:S1:available", "CNY")] = BALANCE_BOUND - 460 - 99
    ledger = ledger_holding(held)
    ledger.ingest(settled_once(ev))
    ledger.ingest([ev.request("PAY1", "S1", 100, at=READY + 1, event_id="e-req")])
    if end is None:
        assert reasons(ledger) == {"e-req": "balance_out_of_range"}
        return
    ledger.ingest([ev.request("PAY1", "S1", 100, at=READY + 1, event_id="e-req")])
    ending = ev.settled if end == "settled" else ev.failed
    ledger.ingest([ending("PAY1", "S1", at=READY + 2, event_id="e-end")])
    if account == "available":
        # request took 100 out (room again), the return of 100 fits exactly: bound is ±2^62
        assert ledger.rejected == []
        ledger.ingest(
            [
                ev.request("PAY2", "S1", 100, at=READY + 3),
                ev.failed("PAY2", "S1", at=READY + 4, event_id="e-end2"),
            ]
        )
        assert ledger.rejected == []
        return
    assert reasons(ledger) == {"e-end": "balance_out_of_range"}
    assert sharer_buckets(ledger, "S1")["inflight"] == 100  # the payout is still in flight


def test_the_bound_is_inclusive_both_ways() -> None:
    state = WorkingState(Committed({("a", "CNY"): BALANCE_BOUND - 1, ("b", "CNY"): -BALANCE_BOUND}))
    entry = JournalEntry(
        "e", 0, "accrual", "r", 0, (Posting("a", "CNY", 1), Posting("b", "CNY", -1))
    )
    assert state.beyond_bound([entry]) == ("b", "CNY", -BALANCE_BOUND - 1)
    fits = JournalEntry("e", 0, "accrual", "r", 0, (Posting("a", "CNY", 1), Posting("b", "CNY", 0)))
    assert state.beyond_bound([fits]) is None


def test_optimistic_balances_are_checked_after_the_batch() -> None:
    """The service's first pass loads no balance: what it posted is checked afterwards in
    one look-up, and the balances it took too far are named for an exact second pass."""
    held = {("merchant:M1:charges", "CNY"): -BALANCE_BOUND + 1000}  # room for one order
    events = [*setup(Ev()), *sale(Ev("x"), "O1"), *sale(Ev("y"), "O2")]
    first = WorkingState(Committed(held), optimistic_balances=True)
    from ledger.domain.processor import Incoming, process

    batch = [Incoming(e, n, "t", "c") for n, e in enumerate(events, 1)]
    assert all(type(r.outcome).__name__ == "Applied" for r in process(batch, first))
    assert first.breaches() == {("merchant:M1:charges", "CNY")}

    second = WorkingState(Committed(held), optimistic_balances=True)
    second.prefetch(balances=first.breaches())
    outcomes = [type(r.outcome).__name__ for r in process(batch, second)]
    assert outcomes == ["Applied"] * 4 + ["Rejected"]
    assert second.breaches() == set()


def test_a_batch_far_from_the_bound_needs_no_second_pass() -> None:
    state = WorkingState(Committed({}), optimistic_balances=True)
    from ledger.domain.processor import Incoming, process

    ev = Ev()
    process([Incoming(e, n, "t", "c") for n, e in enumerate([*setup(ev), *sale(ev)], 1)], state)
    assert state.breaches() == set()


# --- settlement: as_of_in_future ----------------------------------------------------------------


def test_a_run_whose_as_of_is_later_than_its_own_time_is_rejected() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            *setup(ev),
            *sale(ev),
            ev.complete("O1", "B1", DONE),
            ev.run("RUN1", READY, at=READY - 1, event_id="e-early"),
        ]
    )
    assert reasons(ledger) == {"e-early": "as_of_in_future"}
    assert sharer_buckets(ledger, "S1") == {
        "pending": 460,
        "available": 0,
        "inflight": 0,
        "paid": 0,
    }
    ledger.ingest([ev.run("RUN1", READY, at=READY)])  # the id was not taken: on time, it runs
    assert sharer_buckets(ledger, "S1")["available"] == 460


# --- beyond the list: the cost of one event stays bounded ----------------------------------------


class DeepChain(NothingLoader):
    """Committed sharers S0 ← S1 ← … ← S9999 (each the upline of the next); counts look-ups."""

    def __init__(self) -> None:
        self.looked_up = 0

    def sharers(self, ids: Iterable[str]) -> dict[str, Sharer]:
        found = {}
        for sharer_id in ids:
            self.looked_up += 1
            n = int(sharer_id[1:]) if sharer_id[1:].isdigit() else -1
            if sharer_id.startswith("S") and 0 <= n < 10_000:
                found[sharer_id] = Sharer(sharer_id, f"S{n - 1}" if n else None, 0)
        return found


def test_enrolling_under_the_bottom_of_a_deep_chain_does_not_walk_it() -> None:
    """The cycle check walked every upline up to the root, one database look-up each: a
    publisher enrolling a 10,000-deep chain made every later enrollment cost 10,000."""
    loader = DeepChain()
    ledger = InMemoryLedger()
    ledger.state = WorkingState(loader)
    ledger.ingest([Ev().enroll("NEW", "S9999")])
    assert ledger.rejected == [] and ledger.state.sharer("NEW") is not None
    assert loader.looked_up < 10
