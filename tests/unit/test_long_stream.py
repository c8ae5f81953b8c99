"""The long run's stream (bench/long_stream.py) and the simulator options it rests on."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator

from bench.long_report import targets, window_rate
from bench.long_stream import LongStream
from ledger.domain.events import Event, OrderPlaced, PlanPublished, SettlementRun, SharerEnrolled
from ledger.simulate import generate


def digest(events: list[Event]) -> str:
    return hashlib.sha1(repr(events).encode()).hexdigest()[:10]


def test_the_defaults_give_the_events_they_always_gave() -> None:
    # digests taken before start/tag/heavy_buyers existed: the options cost no random draw
    assert digest(generate(7).all()) == "2215217353"
    assert digest(generate(3, orders=50, days=30).all()) == "ab0f24b102"


def test_periods_chain_into_one_stream_with_unique_ids_and_a_run_per_period() -> None:
    stream = LongStream(5, periods=4, orders=300)
    events = list(stream)
    assert len({e.event_id for e in events}) == len(events)
    assert sum(isinstance(e, PlanPublished) for e in events) == 2
    runs = [n for n, e in enumerate(events) if isinstance(e, SettlementRun)]
    assert len(runs) == 4
    orders = [n for n, e in enumerate(events) if isinstance(e, OrderPlaced)]
    assert runs[0] < orders[len(orders) // 2]  # runs are spread, not all at the end
    # sharers and buyers grow with the periods
    sharers = {e.sharer_id for e in events if isinstance(e, SharerEnrolled)}
    buyers = {e.buyer_id for e in events if isinstance(e, OrderPlaced)}
    assert len(sharers) == 4 * 5 and len(buyers) > 3 * 200
    # in event-time order, except each period's enrollments, sent when it opens
    late = [
        e
        for e, after in zip(events, events[1:], strict=False)
        if after.occurred_at < e.occurred_at and not isinstance(after, SharerEnrolled)
    ]
    assert all(isinstance(e, SharerEnrolled) for e in late)


def test_heavy_buyers_are_the_same_in_every_period() -> None:
    orders = [e for e in LongStream(5, 3, "heavy", orders=600) if isinstance(e, OrderPlaced)]
    heavy = Counter(e.buyer_id for e in orders if e.buyer_id.startswith("h"))
    assert set(heavy) == {"h000", "h001", "h002"}
    assert 0.05 < sum(heavy.values()) / len(orders) < 0.15
    periods = {e.order_id.split("-")[0] for e in orders if e.buyer_id == "h000"}
    assert periods == {"p0", "p1", "p2"}


class Counted(LongStream):
    """Counts the periods generated and not yet emitted to their end."""

    open_now = 0
    most_open = 0

    def period(self, k: int) -> tuple[list[Event], list[Event]]:
        setup, timed = super().period(k)
        Counted.open_now += 1
        Counted.most_open = max(Counted.most_open, Counted.open_now)
        return setup, Closing(timed)


class Closing(list[Event]):
    def __iter__(self) -> Iterator[Event]:
        yield from super().__iter__()
        Counted.open_now -= 1


def test_the_stream_holds_a_few_periods_at_once_however_long() -> None:
    events = sum(1 for _ in Counted(5, periods=12, orders=200))
    assert events > 12 * 1000
    assert Counted.open_now == 0
    assert 2 <= Counted.most_open <= 3


def result(samples: list[list[float]], points: list[dict[str, object]]) -> dict[str, object]:
    return {"step": 100, "records": 400, "samples": samples, "points": points}


def point(records: int, seconds: float, rss: float, pg: float) -> dict[str, object]:
    return {
        "kind": "mark" if records else "start",
        "records": records,
        "seconds": seconds,
        "rss_mib": rss,
        "hwm_mib": rss,
        "step_max_rss_mib": rss,
        "consumer_cpu_s": seconds / 2,
        "postgres_cpu_s": pg,
        "kafka_cpu_s": 0.0,
        "postgres_started": "t0",
        "db_mib": records / 10,
        "tables_mib": {},
    }


def test_window_rates_interpolate_between_samples() -> None:
    samples = [[0.0, 0, 1], [1.0, 100, 1], [3.0, 300, 1]]
    assert window_rate(samples, 50, 250) == 100.0
    assert window_rate(samples, 100, 400) is None  # not reached yet


def test_targets_say_met_and_not_met() -> None:
    slow_end = [[1.0, 100, 0], [2.0, 200, 0], [3.0, 300, 0], [5.0, 400, 0]]
    points = [point(0, 0, 100, 0), point(100, 1, 200, 1), point(200, 2, 210, 2)]
    points += [point(300, 3, 230, 3), point(400, 5, 260, 4)]
    figures = {
        t["target"].split(" ")[0] + str(n): t["met"]
        for n, t in enumerate(targets(result(slow_end, points)))
    }
    assert figures == {
        "throughput0": False,
        "consumer1": False,
        "consumer2": True,
        "PostgreSQL3": True,
    }
    steady = [[1.0, 100, 0], [2.0, 200, 0], [3.0, 300, 0], [4.0, 400, 0]]
    points[-1] = point(400, 4, 239, 4)
    assert all(t["met"] for t in targets(result(steady, points)))
    points.append(point(405, 4.5, 250, 5))  # a tail of 5 records: its CPU is fixed costs
    pg = [t for t in targets(result(steady, points)) if t["target"].startswith("PostgreSQL")]
    assert pg[0]["met"], pg[0]["figure"]  # the last whole step is compared, not the tail
