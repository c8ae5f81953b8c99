"""SPEC §3 "Refunds" and its precise reading: cumulative, whole or nothing, orders that
earned nothing, refunds before their order (§4.6), duplicate refund ids."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, chain, earned, postings_of, reasons

LINES = [("L1", 8800, 2500), ("L2", 1200, None)]
AT = T0 + DAY


def worked(ev: Ev, lines=LINES, depth: int = 3) -> InMemoryLedger:  # type: ignore[no-untyped-def]
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            *chain(ev, depth),
            ev.click("C1", "S1", "B1", AT - 1),
            ev.order("O1", "B1", AT, lines),
        ]
    )
    assert ledger.rejected == []
    return ledger


def refund(ev: Ev, refund_id: str, *lines: tuple[str, int], event_id: str | None = None):  # type: ignore[no-untyped-def]
    return ev.refund(refund_id, "O1", "B1", list(lines), AT + DAY, event_id=event_id)


def party_totals(ledger: InMemoryLedger) -> dict[str, int]:
    return {account: amount for (account, _), amount in ledger.balances().items()}


def test_worked_example_partial_refund_posts_the_differences() -> None:
    ev = Ev()
    ledger = worked(ev)
    ledger.ingest([refund(ev, "R1", ("L1", 4400))])
    assert ledger.entries[-1].kind == "reversal"
    assert postings_of(ledger.entries[-1]) == {
        "platform:fees": -88,
        "sharer:S1:pending": -506,
        "sharer:S2:pending": -304,
        "sharer:S3:pending": -202,
        "merchant:M1:charges": 1100,
    }


def test_refunds_are_cumulative_formula_on_remaining_amounts() -> None:
    """After 4400 then 2200 of L1: remaining 2200 @ 2500 + 1200 @ 1000, pool 670, fee 53,
    levels 308 / 184 / 123; the second refund posts the difference from 97 / 561 / 336 / 224."""
    ev = Ev()
    ledger = worked(ev)
    ledger.ingest([refund(ev, "R1", ("L1", 4400)), refund(ev, "R2", ("L1", 2200))])
    assert ledger.rejected == []
    assert postings_of(ledger.entries[-1]) == {
        "platform:fees": -44,
        "sharer:S1:pending": -253,
        "sharer:S2:pending": -152,
        "sharer:S3:pending": -101,
        "merchant:M1:charges": 550,
    }
    assert party_totals(ledger) == {
        "platform:fees": 53,
        "sharer:S1:pending": 308,
        "sharer:S2:pending": 184,
        "sharer:S3:pending": 123,
        "merchant:M1:charges": -668,
    }


def test_cumulative_not_per_refund_rounding() -> None:
    """Line 3 @ 10000 bps: pool 3, level 1 ⌊2.76 × 0.5⌋ = 1. Refunding 1 leaves pool 2 and
    level 1 ⌊0.92⌋ = 0, so the refund takes the whole 1 (a formula on the refunded 1 alone
    would take ⌊0.46⌋ = 0 and leave S1 paid for nothing)."""
    ev = Ev()
    ledger = worked(ev, [("L1", 3, 10_000)], depth=1)
    assert earned(ledger) == {"S1": 1}
    ledger.ingest([refund(ev, "R1", ("L1", 1))])
    assert earned(ledger) == {}
    ledger.ingest([refund(ev, "R2", ("L1", 1)), refund(ev, "R3", ("L1", 1))])
    assert ledger.rejected == [] and ledger.balances() == {}


@pytest.mark.parametrize(
    "pieces",
    [
        [[("L1", 8800), ("L2", 1200)]],
        [[("L1", 4400)], [("L1", 4400), ("L2", 1200)]],
        [[("L2", 1)], [("L1", 1)], [("L1", 8799)], [("L2", 1199)]],
        [[("L1", 1)]] * 3 + [[("L1", 8797), ("L2", 1200)]],
    ],
    ids=["at-once", "two", "four", "crumbs"],
)
def test_full_refund_returns_every_party_to_exactly_zero(pieces) -> None:  # type: ignore[no-untyped-def]
    ev = Ev()
    ledger = worked(ev)
    ledger.ingest([refund(ev, f"R{k}", *lines) for k, lines in enumerate(pieces)])
    assert ledger.rejected == []
    assert ledger.balances() == {}


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.integers(0, 30_000), st.sampled_from([None, 0, 1, 333, 2500, 10_000])),
        min_size=1,
        max_size=4,
    ),
    fee=st.sampled_from([0, 1, 800, 3333, 9999]),
    shares=st.sampled_from([(5000, 3000, 2000), (3333, 3333, 3334), (1, 2, 3), (10000, 0, 0)]),
    cuts=st.lists(st.integers(0, 1000), max_size=12),
    depth=st.integers(1, 4),
)
def test_full_refund_in_any_split_returns_every_party_to_zero(
    lines, fee, shares, cuts, depth
) -> None:  # type: ignore[no-untyped-def]
    ev = Ev()
    ledger = InMemoryLedger()
    named = [(f"L{k}", amount, rate) for k, (amount, rate) in enumerate(lines)]
    ledger.ingest(
        [
            ev.plan(fee=fee, shares=shares),
            *chain(ev, depth),
            ev.click("C1", "S1", "B1", AT - 1),
            ev.order("O1", "B1", AT, named),
        ]
    )
    # cut every line's amount into pieces, refunded round-robin over several refunds
    remaining = {line_id: amount for line_id, amount, _ in named}
    refunds = []
    for k, cut in enumerate(cuts):
        line_id = named[k % len(named)][0]
        piece = min(cut, remaining[line_id])
        if piece > 0:
            remaining[line_id] -= piece
            refunds.append(refund(ev, f"R{k}", (line_id, piece)))
    rest = [(line_id, left) for line_id, left in remaining.items() if left > 0]
    if rest:
        refunds.append(refund(ev, "R-last", *rest))
    ledger.ingest(refunds)
    assert ledger.rejected == []
    assert ledger.balances() == {}


def test_over_refund_is_rejected_whole_with_nothing_applied() -> None:
    ev = Ev()
    ledger = worked(ev)
    before = list(ledger.entries)
    ledger.ingest([refund(ev, "R1", ("L1", 4400), ("L2", 1201), event_id="e-bad")])
    assert reasons(ledger) == {"e-bad": "over_refund"}
    assert ledger.entries == before
    # nothing of R1 was recorded: L1 can still be refunded in full, and R1's id is free
    ledger.ingest([refund(ev, "R1", ("L1", 8800), ("L2", 1200))])
    assert len(ledger.rejected) == 1
    assert ledger.balances() == {}


def test_cumulative_over_refund_is_rejected() -> None:
    ev = Ev()
    ledger = worked(ev)
    ledger.ingest(
        [
            refund(ev, "R1", ("L1", 8000)),
            refund(ev, "R2", ("L1", 801), event_id="e-bad"),
            refund(ev, "R3", ("L1", 800)),
        ]
    )
    assert reasons(ledger) == {"e-bad": "over_refund"}
    assert party_totals(ledger) == {  # only L2's 1200 @ 1000 remains: pool 120
        "platform:fees": 9,
        "sharer:S1:pending": 55,
        "sharer:S2:pending": 33,
        "sharer:S3:pending": 22,
        "merchant:M1:charges": -119,
    }


def test_unknown_line_is_rejected_whole() -> None:
    ev = Ev()
    ledger = worked(ev)
    before = list(ledger.entries)
    ledger.ingest(
        [
            refund(ev, "R1", ("L1", 100), ("L9", 1), event_id="e-bad"),
            refund(ev, "R2", ("L1", 8800), ("L2", 1200)),
        ]
    )
    assert reasons(ledger) == {"e-bad": "unknown_line"}
    assert ledger.entries[: len(before)] == before
    assert ledger.balances() == {}


@pytest.mark.parametrize("amount", [0, -1, -8800])
def test_refund_amount_not_positive_is_rejected_whole(amount: int) -> None:
    ev = Ev()
    ledger = worked(ev)
    before = list(ledger.entries)
    ledger.ingest([refund(ev, "R1", ("L1", 4400), ("L2", amount), event_id="e-bad")])
    assert reasons(ledger) == {"e-bad": "invalid_refund_amount"}
    assert ledger.entries == before
    ledger.ingest([refund(ev, "R2", ("L1", 8800), ("L2", 1200))])
    assert ledger.balances() == {}


def test_refund_of_an_order_that_earned_nothing_is_recorded_without_money() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest([ev.plan(), ev.order("O1", "B1", AT, LINES)])  # no click: earns nothing
    ledger.ingest([refund(ev, "R1", ("L1", 8000))])
    assert ledger.rejected == [] and ledger.entries == [] and ledger.parked() == []
    # it was recorded: its id is taken and its amount counts towards the line's total
    ledger.ingest(
        [
            refund(ev, "R1", ("L2", 1), event_id="e-dup"),
            refund(ev, "R2", ("L1", 801), event_id="e-over"),
            refund(ev, "R3", ("L1", 800)),
        ]
    )
    assert reasons(ledger) == {"e-dup": "duplicate_refund_id", "e-over": "over_refund"}
    assert ledger.entries == []


def test_refund_before_its_order_waits_then_gives_the_in_order_result() -> None:
    ev = Ev()
    in_order = worked(ev)
    in_order.ingest([refund(ev, "R1", ("L1", 4400), event_id="e-r1")])
    ev2 = Ev()
    early = InMemoryLedger()
    head = [ev2.plan(), *chain(ev2, 3), ev2.click("C1", "S1", "B1", AT - 1)]
    early.ingest(head + [refund(ev2, "R1", ("L1", 4400), event_id="e-r1")])
    assert early.parked() == ["e-r1"] and early.entries == []
    early.ingest([ev2.order("O1", "B1", AT, LINES)])
    assert early.parked() == [] and early.rejected == []
    assert early.balances() == in_order.balances()
    assert [postings_of(e) for e in early.entries] == [postings_of(e) for e in in_order.entries]


def test_refunds_waiting_for_an_order_apply_in_arrival_order_and_are_checked_then() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            *chain(ev, 1),
            ev.click("C1", "S1", "B1", AT - 1),
            refund(ev, "R1", ("L1", 6000)),
            refund(ev, "R2", ("L1", 5000), event_id="e-over"),
            refund(ev, "R3", ("L1", 4000)),
        ]
    )
    assert len(ledger.parked()) == 3
    ledger.ingest([ev.order("O1", "B1", AT, [("L1", 10_000, None)])])
    assert reasons(ledger) == {"e-over": "over_refund"}
    assert ledger.parked() == [] and ledger.balances() == {}


def test_duplicate_refund_id_is_rejected() -> None:
    ev = Ev()
    ledger = worked(ev)
    ledger.ingest([refund(ev, "R1", ("L1", 4400)), refund(ev, "R1", ("L2", 100), event_id="e-dup")])
    assert reasons(ledger) == {"e-dup": "duplicate_refund_id"}
    assert party_totals(ledger)["sharer:S1:pending"] == 561


def test_refund_id_is_unique_across_orders() -> None:
    ev = Ev()
    ledger = worked(ev)
    ledger.ingest(
        [
            ev.order("O2", "B1", AT + 1, LINES),
            refund(ev, "R1", ("L1", 4400)),
            ev.refund("R1", "O2", "B1", [("L1", 4400)], AT + DAY, event_id="e-dup"),
        ]
    )
    assert reasons(ledger) == {"e-dup": "duplicate_refund_id"}
