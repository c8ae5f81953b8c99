"""The integer fast path of the commission split equals the exact rational formula."""

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.money import pool, split, split_lines

lines = st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 10_000)), min_size=1, max_size=6)
bps = st.integers(0, 10_000)


@given(lines=lines, fee=bps, shares=st.lists(bps, min_size=0, max_size=3))
def test_integer_split_equals_fraction_split(lines, fee, shares) -> None:
    assert split_lines(lines, fee, tuple(shares)) == split(pool(lines), fee, tuple(shares))


def test_worked_example() -> None:
    result = split_lines([(8800, 2500), (1200, 1000)], 800, (5000, 3000, 2000))
    assert (result.fee, result.levels, result.merchant_charge) == (185, (1067, 640, 426), 2318)
    assert pool([(8800, 2500), (1200, 1000)]) == 2320
