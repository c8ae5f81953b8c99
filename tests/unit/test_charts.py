"""The dashboard's bar charts (ledger/web/charts.py): a continuous time axis (a day
without activity is a gap with its own slot) and negative values below the zero line."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.web.charts import bar_chart, periods_between


def test_periods_between_days_and_months() -> None:
    assert periods_between("2026-02-27", "2026-03-02", "day") == [
        "2026-02-27",
        "2026-02-28",
        "2026-03-01",
        "2026-03-02",
    ]
    assert periods_between("2025-11", "2026-02", "month") == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]


def test_quiet_days_are_gaps_and_refund_days_draw_below_zero() -> None:
    values = {"2026-03-01": (1000, 50), "2026-03-04": (0, -30), "2026-03-05": (400, 20)}
    chart = bar_chart(values, ("charges", "fees"), "day")
    assert [s.period for s in chart.slots] == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
    ]
    quiet = [s for s in chart.slots if not s.bars]
    assert [s.period for s in quiet] == ["2026-03-02", "2026-03-03"]
    refund = chart.slots[3].bars[1]
    assert refund.value == -30 and refund.y == chart.zero_y and refund.h > 0
    top = chart.slots[0].bars[0]
    assert top.y == 0 and top.y + top.h == chart.zero_y  # the highest bar fills the top
    assert chart.top == 1000 and chart.bottom == -30
    assert 0 < chart.zero_y < chart.height


@settings(deadline=None)  # a loaded machine is no failure
@given(
    st.dictionaries(
        st.dates().map(lambda d: d.isoformat()),
        st.tuples(st.integers(-(2**62), 2**62), st.integers(-(2**62), 2**62)),
        min_size=1,
        max_size=30,
    )
)
def test_every_bar_stays_inside_the_chart_on_its_side_of_zero(values) -> None:
    chart = bar_chart(values, ("a", "b"), "day", most=40)
    assert len(chart.slots) <= 40 and chart.slots[-1].period == max(values)
    xs = [s.x for s in chart.slots]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    for slot in chart.slots:
        for bar in slot.bars:
            assert bar.y >= 0 and bar.y + bar.h <= chart.height
            if bar.value > 0:
                assert bar.y + bar.h == chart.zero_y
            elif bar.value < 0:
                assert bar.y == chart.zero_y
            assert bar.value == values[slot.period][bar.series]


@settings(deadline=None)  # a loaded machine is no failure
@given(st.dates(), st.dates(), st.integers(1, 50))
def test_the_last_periods_are_the_tail_of_all(a, b, most) -> None:
    first, last = sorted([a, b])
    for period, cut in (("day", 10), ("month", 7)):
        f, la = first.isoformat()[:cut], last.isoformat()[:cut]
        tail = periods_between(f, la, period, most)  # type: ignore[arg-type]
        assert tail[-1] == la and len(tail) == len(set(tail)) and tail == sorted(tail)
        if len(tail) < most:
            assert tail[0] == f
