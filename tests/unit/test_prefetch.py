"""What each event type declares it reads (``engine.RULES`` needs) covers what its rules
read by id: after ``prefetch`` a batch asks its loader for no sharer, click, order,
payout, refund, run, event id or waiting enrollment one at a time. A type that forgets a
need fails here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest

from ledger.domain.memory import InMemoryLedger
from ledger.domain.model import Click, Order, Payout, Sharer
from ledger.domain.plans import Plan
from ledger.domain.prefetch import prefetch
from ledger.domain.processor import Incoming, process
from ledger.domain.state import NothingLoader, Probe, WorkingState
from ledger.simulate import generate_dense

BY_ID = {
    "sharers",
    "clicks",
    "orders",
    "payouts",
    "refunds",
    "runs",
    "processed",
    "waiting_enrollments",
}
PREFETCHED = BY_ID | {"latest_clicks"}  # attribution's: one per order, loaded up front


class Committed(NothingLoader):
    """A loader over the state an in-memory ledger committed, counting each look-up."""

    def __init__(self, committed: WorkingState) -> None:
        self.committed = committed
        self.calls: Counter[str] = Counter()

    def plans(self) -> list[Plan]:
        return list(self.committed.plans)

    def sharers(self, ids: Iterable[str]) -> dict[str, Sharer]:
        self.calls["sharers"] += 1
        return {k: s for k in ids if (s := self.committed.sharer(k)) is not None}

    def clicks(self, ids: Iterable[str]) -> dict[str, Click]:
        self.calls["clicks"] += 1
        return {k: c for k in ids if (c := self.committed.click(k)) is not None}

    def latest_clicks(self, probes: Iterable[Probe]) -> dict[Probe, Click]:
        self.calls["latest_clicks"] += 1
        found = {}
        for probe in probes:
            if clicks := self.committed.candidate_clicks(*probe):
                found[probe] = max(clicks, key=lambda c: (c.occurred_at, -c.arrival))
        return found

    def orders(self, ids: Iterable[str]) -> dict[str, Order]:
        self.calls["orders"] += 1
        return {k: o for k in ids if (o := self.committed.order(k)) is not None}

    def payouts(self, ids: Iterable[str]) -> dict[str, Payout]:
        self.calls["payouts"] += 1
        return {k: p for k in ids if (p := self.committed.payout(k)) is not None}

    def refunds(self, ids: Iterable[str]) -> set[str]:
        self.calls["refunds"] += 1
        return {k for k in ids if self.committed.refund_seen(k)}

    def runs(self, ids: Iterable[str]) -> set[str]:
        self.calls["runs"] += 1
        return {k for k in ids if self.committed.run_seen(k)}

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        self.calls["processed"] += 1
        return {k for k in event_ids if self.committed.is_processed(k)}

    def waiting_enrollments(self, sharer_ids: Iterable[str]) -> dict[str, str | None]:
        self.calls["waiting_enrollments"] += 1
        waiting = {k: self.committed.waiting_upline(k) for k in sharer_ids}
        return {k: upline for k, (is_waiting, upline) in waiting.items() if is_waiting}


@pytest.mark.parametrize("optimistic", [False, True])
def test_after_prefetch_a_batch_loads_nothing_by_id(optimistic: bool) -> None:
    events = generate_dense(orders=600, days=12)
    half = len(events) // 2
    earlier = InMemoryLedger()
    earlier.ingest(events[:half])
    later = events[half:]
    assert {type(e) for e in later} == {type(e) for e in events}  # every type is exercised

    loader = Committed(earlier.state)
    state = WorkingState(loader)
    prefetch(state, later, optimistic=optimistic)
    assert set(loader.calls) <= PREFETCHED
    loader.calls.clear()
    results = process([Incoming(e, 10**6 + n, "test", "c") for n, e in enumerate(later)], state)
    assert len(results) >= len(later)
    assert not PREFETCHED & set(loader.calls), loader.calls
