"""The views recomputed in plain Python from journal entries: the independent second
opinion that ``ledger check`` and the tests hold the SQL projectors to.

Pure: no SQL, no I/O. ``recompute(entries, orders)`` folds ``(chain, chain_seq, entry)``
triples, in any order, into the rows each view table should hold, keyed by the table's
primary key with the other columns in table order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ledger.domain.entries import PLATFORM_FEES, SHARER_BUCKETS, JournalEntry, split_sharer_account
from ledger.domain.plans import DAY_MS

BUCKETS = SHARER_BUCKETS  # the balances view's bucket columns, in this order


@dataclass(frozen=True)
class OrderInfo:
    """What the payout view needs of an order's reference row."""

    levels: tuple[str, ...]
    currency: str
    merchant_id: str
    plan_id: str | None


@dataclass
class Views:
    # (sharer_id, currency) -> [pending, available, inflight, paid, earned, reversed]
    balances: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # (order_id, sharer_id) -> [level, currency, downline_id, merchant_id, plan_id, accrued,
    #   reversed, settled, settled_at, settle_chain, settle_chain_seq]
    order_levels: dict[tuple[str, str], list[object]] = field(default_factory=dict)
    # (day, currency) -> [fees, merchant_charges]
    fee_totals: dict[tuple[int, str], list[int]] = field(default_factory=dict)


def recompute(
    entries: Iterable[tuple[str, int, JournalEntry]], orders: Mapping[str, OrderInfo]
) -> Views:
    views = Views()
    for chain, chain_seq, entry in entries:
        _balances(views, entry)
        _fees(views, entry)
        if entry.order_id is not None:
            _order_levels(views, chain, chain_seq, entry, orders[entry.order_id])
    return views


def _balances(views: Views, entry: JournalEntry) -> None:
    for posting in entry.postings:
        parsed = split_sharer_account(posting.account)
        if parsed is None:
            continue
        sharer, bucket = parsed
        row = views.balances.setdefault((sharer, posting.currency), [0] * 6)
        row[BUCKETS.index(bucket)] += posting.amount
        if entry.kind == "accrual":
            row[4] += posting.amount
        elif entry.kind == "reversal":
            row[5] -= posting.amount


def _fees(views: Views, entry: JournalEntry) -> None:
    day = entry.occurred_at // DAY_MS  # floor, like the SQL
    for posting in entry.postings:
        if posting.account == PLATFORM_FEES:
            views.fee_totals.setdefault((day, posting.currency), [0, 0])[0] += posting.amount
        elif posting.account.startswith("merchant:"):
            views.fee_totals.setdefault((day, posting.currency), [0, 0])[1] -= posting.amount


def _order_levels(
    views: Views, chain: str, chain_seq: int, entry: JournalEntry, order: OrderInfo
) -> None:
    assert entry.order_id is not None
    for level, sharer in enumerate(order.levels, 1):
        views.order_levels.setdefault(
            (entry.order_id, sharer),
            [
                level,
                order.currency,
                order.levels[0],
                order.merchant_id,
                order.plan_id,
                0,
                0,
                0,
                None,
                None,
                None,
            ],
        )
    for posting in entry.postings:
        parsed = split_sharer_account(posting.account)
        if parsed is None:
            continue
        row = views.order_levels[(entry.order_id, parsed[0])]
        if entry.kind == "accrual":
            row[5] += posting.amount  # type: ignore[operator]
        elif entry.kind == "reversal":
            row[6] -= posting.amount  # type: ignore[operator]
        elif entry.kind == "settlement":
            if posting.amount > 0:
                row[7] += posting.amount  # type: ignore[operator]
            if row[8] is None:
                row[8], row[9], row[10] = entry.occurred_at, chain, chain_seq
