"""What a batch's events will read, so the state loads each kind in one bulk look-up.

Each event type declares its needs beside its rules (``engine.RULES``); ``prefetch``
gathers them over a batch and loads them before the batch runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.domain.state import Key


@dataclass
class Needs:
    sharers: set[str] = field(default_factory=set)
    named_clicks: set[str] = field(default_factory=set)  # clicks an order names
    new_clicks: set[str] = field(default_factory=set)  # clicks this batch records
    click_sharers: dict[str, set[str]] = field(default_factory=dict)  # buyer -> its sharers
    orders: set[str] = field(default_factory=set)  # orders read (completed, refunded)
    new_orders: set[str] = field(default_factory=set)  # orders this batch places
    refunds: set[str] = field(default_factory=set)
    payouts: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    refs: set[str] = field(default_factory=set)  # what events of this batch may release
    enrollments: set[str] = field(default_factory=set)  # sharers whose waiting enrollment is read
    balances: set[Key] = field(default_factory=set)  # balances a decision reads
    # (buyer, order time) of each order: attribution reads the buyer's latest click then
    attributions: set[tuple[str, int]] = field(default_factory=set)
