"""Bar charts drawn as SVG by the templates (no script): positions computed here.

The time axis is continuous: every day (or month) from the first shown to the last has
its slot, so a day without activity is a visible gap, never a missing date; a negative
value (a day of refunds) is a bar below the zero line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Period = Literal["day", "month"]


@dataclass(frozen=True)
class Bar:
    series: int  # index into the chart's series (its CSS class and legend)
    value: int
    x: int
    y: int
    w: int
    h: int
    title: str


@dataclass(frozen=True)
class Slot:
    period: str
    x: int
    label: bool  # whether the axis names this period
    bars: tuple[Bar, ...]  # empty: no activity that period (a gap)


@dataclass(frozen=True)
class Chart:
    slots: tuple[Slot, ...]
    series: tuple[str, ...]
    width: int
    height: int
    zero_y: int  # the y of the zero line
    top: int  # the largest value shown (>= 0)
    bottom: int  # the smallest value shown (<= 0)


def periods_between(first: str, last: str, period: Period, most: int | None = None) -> list[str]:
    """Every period label from ``first`` to ``last`` inclusive ("2026-03-01" days or
    "2026-03" months), or only the last ``most`` of them."""
    if period == "month":
        months = (int(last[:4]) - int(first[:4])) * 12 + int(last[5:7]) - int(first[5:7]) + 1
        end = int(last[:4]) * 12 + int(last[5:7]) - 1
        count = months if most is None else min(months, most)
        return [f"{n // 12:04d}-{n % 12 + 1:02d}" for n in range(end - count + 1, end + 1)]
    start, end_day = date.fromisoformat(first), date.fromisoformat(last)
    days = (end_day - start).days + 1
    count = days if most is None else min(days, most)
    return [(end_day - timedelta(n)).isoformat() for n in range(count - 1, -1, -1)]


def bar_chart(
    values: Mapping[str, Sequence[int]],
    series: Sequence[str],
    period: Period,
    *,
    describe: Callable[[int], str] = str,
    most: int = 120,
    width: int = 960,
    height: int = 220,
    widest: int = 48,
) -> Chart:
    """``values``: per period label, one value per series. The last ``most`` periods up to
    the latest with a value are drawn, each a slot of one bar per series, ``width`` pixels
    in all at most (unless every slot at its narrowest needs more), a slot ``widest`` at most."""
    if not values:
        return Chart((), tuple(series), width, height, height, 0, 0)
    labels = periods_between(min(values), max(values), period, most)
    shown = [v for label in labels for v in values.get(label, ())]
    top, bottom = max([0, *shown]), min([0, *shown])
    span = max(top - bottom, 1)
    zero_y = top * height // span
    slot = max(2 * len(series), min(widest, width // len(labels)))
    w = max(1, (slot - 2) // len(series))
    every = max(1, len(labels) // 8)  # name about eight periods on the axis
    slots = []
    for n, label in enumerate(labels):
        bars = []
        for k, value in enumerate(values.get(label, ())):
            h = abs(value) * height // span
            y = zero_y - h if value >= 0 else zero_y
            bars.append(
                Bar(k, value, n * slot + k * w, y, w, h, f"{label} {series[k]} {describe(value)}")
            )
        slots.append(Slot(label, n * slot, n % every == 0, tuple(bars)))
    return Chart(tuple(slots), tuple(series), len(labels) * slot, height, zero_y, top, bottom)
