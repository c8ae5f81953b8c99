"""The long run's stream: periods of the realistic mix chained in time, generated lazily.

Each period is ``simulate.generate`` with the bench's realistic shape (500 sharers, 20,000
buyers, 30,000 orders over 20 days: ~179k events), its own start and id tag, so sharers
and buyers grow with the orders (a buyer's clicks in the attribution window do not) and
every period ends with its own settlement run and payouts: runs every 20 days between the
buyers' events, not one at the end. The variant ``heavy`` adds three buyers, the same in
every period, who place 10% of the orders: their history grows with the stream.

The periods overlap in time (a period's clicks start 20 days before it, its refunds end
17 days after), so they are merged by event time; a period is opened (its enrollments
emitted, its events generated) when the merge reaches its earliest click. At most three
periods are held at once, whatever the length of the stream.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.support import START, Event, PlanPublished, generate

DAY_MS = 86_400_000
PERIOD_DAYS = 20
PERIOD_MS = PERIOD_DAYS * DAY_MS
EARLIEST_CLICK_MS = 20 * DAY_MS  # simulate.generate: clicks up to 20 days before their order
EVENTS_PER_PERIOD = 178_950  # measured: the realistic mix's 30,000 orders give ~178,950 events
VARIANTS: dict[str, dict[str, Any]] = {
    "growing": {},
    "heavy": {"heavy_buyers": 3, "heavy_share": 0.10},
}


@dataclass(frozen=True)
class LongStream:
    """``periods`` periods of ``variant``, seeded; iterate for the events in publish order."""

    seed: int
    periods: int
    variant: str = "growing"
    orders: int = 30_000  # per period; the sharers (1 per 60) and buyers (2 per 3) follow

    @classmethod
    def for_records(cls, seed: int, records: int, variant: str = "growing") -> LongStream:
        return cls(seed, max(1, round(records / EVENTS_PER_PERIOD)), variant)

    @property
    def name(self) -> str:
        return f"{self.variant}-s{self.seed}-n{self.periods}"

    def period(self, k: int) -> tuple[list[Event], list[Event]]:
        """Period ``k``: (its enrollments, its other events in time order)."""
        work = generate(
            self.seed + k,
            sharers=self.orders // 60,
            buyers=self.orders * 2 // 3,
            orders=self.orders,
            days=PERIOD_DAYS,
            start=START + k * PERIOD_MS,
            tag=f"p{k}-",
            **VARIANTS[self.variant],
        )
        setup = [e for e in work.setup if k == 0 or not isinstance(e, PlanPublished)]
        # stable: a run keeps its place before the payouts that follow it
        timed = sorted(work.activity + work.finance, key=lambda e: e.occurred_at)
        return setup, timed

    def __iter__(self) -> Iterator[Event]:
        heap: list[tuple[int, int, Event, Iterator[Event]]] = []  # one head per open period
        opened = 0

        def push(k: int, events: Iterator[Event]) -> None:
            event = next(events, None)
            if event is not None:
                heapq.heappush(heap, (event.occurred_at, k, event, events))

        while heap or opened < self.periods:
            opens_at = START + opened * PERIOD_MS - EARLIEST_CLICK_MS
            if opened < self.periods and (not heap or heap[0][0] >= opens_at):
                setup, timed = self.period(opened)
                yield from setup
                push(opened, iter(timed))
                opened += 1
                continue
            _, k, event, events = heapq.heappop(heap)
            yield event
            push(k, events)
