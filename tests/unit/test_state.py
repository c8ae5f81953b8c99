"""WorkingState: one get-or-load cache, and changes that cannot be made without being
recorded."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from ledger.domain.model import PAYOUT_INFLIGHT, PAYOUT_PAID, Line, Order, Payout
from ledger.domain.money import zero_split
from ledger.domain.state import Lookup, NothingLoader, WorkingState


def order(order_id: str = "O1") -> Order:
    return Order(
        order_id=order_id,
        buyer_id="B1",
        merchant_id="M1",
        currency="CNY",
        occurred_at=0,
        plan_id=None,
        levels=(),
        lines={"L1": Line("L1", 100, 1000)},
        posted=zero_split(0),
    )


class CommittedLoader(NothingLoader):
    """One committed order and one committed payout."""

    def orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return {"O1": order("O1")} if "O1" in ids else {}

    def payouts(self, ids: Iterable[str]) -> dict[str, Payout]:
        return {"P1": Payout("P1", "S1", "CNY", 500, PAYOUT_INFLIGHT)} if "P1" in ids else {}


def test_orders_payouts_and_lines_cannot_be_changed_behind_the_states_back() -> None:
    loaded = order()
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.settled_by = "run-1"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.lines["L1"].refunded += 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Payout("P1", "S1", "CNY", 1, PAYOUT_INFLIGHT).state = PAYOUT_PAID  # type: ignore[misc]


def test_updating_a_committed_order_writes_its_latest_version_once() -> None:
    state = WorkingState(CommittedLoader())
    first = state.order("O1")
    assert first is not None
    state.update_order(dataclasses.replace(first, completed_at=5))
    state.update_order(dataclasses.replace(first, completed_at=5, settled_by="run-1"))
    changes = state.changes()
    assert changes.new_orders == []
    assert [(o.completed_at, o.settled_by) for o in changes.changed_orders] == [(5, "run-1")]
    assert state.order("O1") == changes.changed_orders[0]


def test_updating_a_new_order_only_replaces_the_version_to_insert() -> None:
    state = WorkingState(CommittedLoader())
    state.add_order(order("O2"))
    state.update_order(dataclasses.replace(order("O2"), completed_at=7))
    changes = state.changes()
    assert [o.completed_at for o in changes.new_orders] == [7]
    assert changes.changed_orders == []


def test_updating_payouts_is_recorded_the_same_way() -> None:
    state = WorkingState(CommittedLoader())
    payout = state.payout("P1")
    assert payout is not None
    state.update_payout(dataclasses.replace(payout, state=PAYOUT_PAID))
    assert [p.state for p in state.changes().changed_payouts] == [PAYOUT_PAID]
    state.reset_changes()
    assert state.changes().changed_payouts == []
    after = state.payout("P1")
    assert after is not None and after.state == PAYOUT_PAID


def test_the_cache_asks_the_loader_once_per_id_also_for_absent_ones() -> None:
    asked: list[list[str]] = []

    def load(ids: list[str]) -> dict[str, int]:
        asked.append(sorted(ids))
        return {k: len(k) for k in ids if k != "missing"}

    cache: Lookup[int | None] = Lookup(load, None)
    cache.fill(["ab", "missing", "ab"])
    assert cache.get("ab") == 2
    assert cache.get("missing") is None
    cache.assume_absent(["new"])
    assert cache.get("new") is None
    assert cache.get("abc") == 3
    assert asked == [["ab", "missing"], ["abc"]]
