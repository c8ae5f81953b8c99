"""Commission plans and which one is in force at a given time."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from ledger.domain.events import PlanPublished

DAY_MS = 86_400_000  # SPEC: a day is always 86,400,000 ms, never a calendar day


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    effective_from: int
    default_rate_bps: int
    platform_fee_bps: int
    level_shares_bps: tuple[int, int, int]
    frozen_days: int
    attribution_window_days: int
    self_purchase_allowed: bool
    min_payouts: tuple[tuple[str, int], ...]  # (currency, minimum), sorted by currency

    @classmethod
    def from_event(cls, event: PlanPublished) -> Plan:
        shares = tuple(event.level_shares_bps)
        return cls(
            plan_id=event.plan_id,
            effective_from=event.effective_from,
            default_rate_bps=event.default_rate_bps,
            platform_fee_bps=event.platform_fee_bps,
            level_shares_bps=(shares[0], shares[1], shares[2]),
            frozen_days=event.frozen_days,
            attribution_window_days=event.attribution_window_days,
            self_purchase_allowed=event.self_purchase_allowed,
            min_payouts=tuple(sorted((m.currency, m.amount) for m in event.min_payouts)),
        )

    @property
    def window_ms(self) -> int:
        return self.attribution_window_days * DAY_MS

    @property
    def frozen_ms(self) -> int:
        return self.frozen_days * DAY_MS

    def min_payout(self, currency: str) -> int | None:
        """The minimum payout in ``currency``, or None when the plan does not list it."""
        for listed, minimum in self.min_payouts:
            if listed == currency:
                return minimum
        return None


class PlanBook:
    """The plans applied so far, ordered by effective-from."""

    def __init__(self, plans: list[Plan] | None = None) -> None:
        self._plans = sorted(plans or [], key=lambda p: p.effective_from)
        self._starts = [p.effective_from for p in self._plans]
        self._by_id = {p.plan_id: p for p in self._plans}

    def add(self, plan: Plan) -> None:
        at = bisect_right(self._starts, plan.effective_from)
        self._plans.insert(at, plan)
        self._starts.insert(at, plan.effective_from)
        self._by_id[plan.plan_id] = plan

    def in_force(self, at: int) -> Plan | None:
        """The plan with the latest effective-from not after ``at``."""
        index = bisect_right(self._starts, at)
        return self._plans[index - 1] if index else None

    def get(self, plan_id: str) -> Plan | None:
        return self._by_id.get(plan_id)

    def has_effective_from(self, at: int) -> bool:
        index = bisect_right(self._starts, at)
        return bool(index) and self._starts[index - 1] == at

    def __iter__(self) -> Iterator[Plan]:
        return iter(self._plans)

    def __len__(self) -> int:
        return len(self._plans)
