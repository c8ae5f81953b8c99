"""The reference state the rules read: sharers, clicks, orders, payouts.

Plain data. Orders and payouts change as events apply: they are frozen, and a change is
a new version handed to ``WorkingState.update_order``/``update_payout``, which also
records it for writing. Everything else is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ledger.domain.events import Event, SharerEnrolled
from ledger.domain.kinds import PayoutState
from ledger.domain.money import Split


@dataclass(frozen=True, slots=True)
class Sharer:
    sharer_id: str
    upline_id: str | None
    enrolled_at: int


@dataclass(slots=True)  # not frozen: built by the thousand per batch, never changed
class Click:
    click_id: str
    buyer_id: str
    sharer_id: str
    occurred_at: int
    arrival: int  # ledger arrival number: among equal times the first received wins


@dataclass(frozen=True, slots=True)
class Line:
    line_id: str
    amount: int
    rate_bps: int  # the rate in force for this line (merchant's, else the plan default)
    refunded: int = 0

    @property
    def remaining(self) -> int:
        return self.amount - self.refunded


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    occurred_at: int
    plan_id: str | None  # None: the order earns nothing
    levels: tuple[str, ...]  # level 1, 2, 3 sharer ids that exist; () = no commission
    lines: Mapping[str, Line]
    posted: Split  # commission currently posted per party
    no_commission_reason: str | None = None
    completed_at: int | None = None
    settle_due: int | None = None  # completed_at + frozen period
    settled_by: str | None = None  # settlement run id

    @property
    def earns(self) -> bool:
        return bool(self.levels)

    @property
    def settled(self) -> bool:
        return self.settled_by is not None


PAYOUT_INFLIGHT: Final = "inflight"
PAYOUT_PAID: Final = "paid"
PAYOUT_FAILED: Final = "failed"
PAYOUT_REJECTED: Final = "rejected"


@dataclass(frozen=True, slots=True)
class Payout:
    payout_id: str
    sharer_id: str
    currency: str
    amount: int
    state: PayoutState


@dataclass(slots=True)
class ParkedEvent:
    """An event waiting for the reference named by ``waits_for`` (e.g. ``order:O1``)."""

    event: Event
    arrival: int
    source: str
    waits_for: str

    @property
    def subject(self) -> str | None:
        """The sharer a waiting enrollment would enroll (stored, for the cycle check)."""
        return self.event.sharer_id if isinstance(self.event, SharerEnrolled) else None
