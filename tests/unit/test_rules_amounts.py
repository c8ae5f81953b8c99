"""SPEC §3 "Amounts" and the Lines precise reading: exact rational pools, floors only where
the formula puts them, merchant rate null → plan default, 0 → nothing, quantity ignored."""

from ledger.domain.memory import InMemoryLedger
from tests.support.streams import DAY, T0, Ev, chain, postings_of

AT = T0 + DAY


def accrual(lines, depth: int = 3, **plan) -> dict[str, int]:  # type: ignore[no-untyped-def]
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(**plan),
            *chain(ev, depth),
            ev.click("C1", "S1", "B1", AT - 1),
            ev.order("O1", "B1", AT, lines),
        ]
    )
    assert ledger.rejected == []
    if not ledger.entries:
        return {}
    (entry,) = ledger.entries
    assert entry.kind == "accrual"
    return postings_of(entry)


def test_null_merchant_rate_means_plan_default() -> None:
    assert accrual([("L1", 10_000, None)]) == {
        "platform:fees": 80,
        "sharer:S1:pending": 460,
        "sharer:S2:pending": 276,
        "sharer:S3:pending": 184,
        "merchant:M1:charges": -1000,
    }


def test_merchant_rate_overrides_the_default() -> None:
    assert accrual([("L1", 10_000, 2000)])["merchant:M1:charges"] == -2000


def test_zero_merchant_rate_earns_nothing_on_that_line() -> None:
    assert accrual([("L1", 10_000, 0), ("L2", 10_000, None)]) == accrual([("L2", 10_000, None)])
    assert accrual([("L1", 10_000, 0)]) == {}


def test_quantity_is_informational() -> None:
    one = accrual([("L1", 8800, 2500, 1), ("L2", 1200, None, 1)])
    many = accrual([("L1", 8800, 2500, 40), ("L2", 1200, None, 0)])
    assert one == many
    assert one["sharer:S1:pending"] == 1067


def test_pool_is_summed_exactly_before_any_floor() -> None:
    # each line's pool is 1.5; summed exactly the pool is 3 (per-line floors would give 2)
    got = accrual([("L1", 3, 5000), ("L2", 3, 5000)], depth=1, fee=0, shares=(10000, 0, 0))
    assert got == {"sharer:S1:pending": 3, "merchant:M1:charges": -3}


def test_level_is_floored_on_the_unfloored_net_pool() -> None:
    """pool 999: fee ⌊79.92⌋ = 79; net 919.08 (not 999 − 79 = 920); levels ⌊459.54⌋,
    ⌊275.724⌋, ⌊183.816⌋. The merchant keeps the rounding residue."""
    assert accrual([("L1", 9990, None)]) == {
        "platform:fees": 79,
        "sharer:S1:pending": 459,
        "sharer:S2:pending": 275,
        "sharer:S3:pending": 183,
        "merchant:M1:charges": -996,
    }


def test_fee_of_ten_thousand_bps_leaves_nothing_for_levels() -> None:
    assert accrual([("L1", 10_000, None)], fee=10_000) == {
        "platform:fees": 1000,
        "merchant:M1:charges": -1000,
    }


def test_level_shares_below_ten_thousand_leave_the_rest_with_the_merchant() -> None:
    assert accrual([("L1", 10_000, None)], fee=0, shares=(1000, 500, 0)) == {
        "sharer:S1:pending": 100,
        "sharer:S2:pending": 50,
        "merchant:M1:charges": -150,
    }


def test_worked_example() -> None:
    assert accrual([("L1", 8800, 2500), ("L2", 1200, None)]) == {
        "platform:fees": 185,
        "sharer:S1:pending": 1067,
        "sharer:S2:pending": 640,
        "sharer:S3:pending": 426,
        "merchant:M1:charges": -2318,
    }


def test_each_merchant_is_charged_its_own_orders() -> None:
    ev = Ev()
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            ev.plan(),
            *chain(ev, 1),
            ev.click("C1", "S1", "B1", AT - 1),
            ev.order("O1", "B1", AT, merchant="MA"),
            ev.order("O2", "B1", AT + 1, [("L1", 20_000, None)], merchant="MB"),
        ]
    )
    assert ledger.balance("merchant:MA:charges", "CNY") == -540
    assert ledger.balance("merchant:MB:charges", "CNY") == -1080
