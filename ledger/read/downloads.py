"""The tables finance downloads, read a keyset page at a time: balances, payouts by level
(the order-level view), fee and charge totals, dead letters.

Each table is a header and a generator of rows; the generator holds one page of rows at
a time (``PAGE``) and asks for the next only when the writer (ledger/spreadsheets.py) has
taken the last, so a download of any size reads in constant memory. Each runs over one
Connection: one snapshot for the whole file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sqlalchemy import Connection, select, tuple_

from ledger.read import balances as balance_reads
from ledger.read import operations
from ledger.read import totals as total_reads
from ledger.read.models import Balance, DeadLetter, LevelState, Page, Row, Total, page
from ledger.store import view_tables as v
from projectors.catalog import shown

PAGE = 1000  # rows read at once

T = TypeVar("T", bound=Row)


@dataclass(frozen=True)
class OrderLevel(Row):
    """One row of the payout-by-level view: an order's level, its sharer, amounts, state."""

    order_id: str
    level: int
    sharer_id: str
    currency: str
    downline_id: str
    merchant_id: str
    plan_id: str | None
    accrued: int
    reversed: int
    amount: int
    settled: int
    settled_at: int | None
    state: LevelState


@dataclass(frozen=True)
class Table:
    """A download: its sheet title, column names and rows (a generator over ``conn``)."""

    title: str
    columns: tuple[str, ...]
    rows: Iterator[tuple[Any, ...]]


def columns_of(row: type[Row]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(row))


def pages(fetch: Callable[[Any, int], Page[T]], size: int = PAGE) -> Iterator[tuple[Any, ...]]:
    """The rows of every page ``fetch(after, limit)`` returns, as tuples, one page read at
    a time: the next is read only when the caller has taken this one's rows."""
    after = None
    while True:
        found = fetch(after, size)
        for row in found.items:
            yield tuple(getattr(row, name) for name in row.__dataclass_fields__)
        if found.after is None:
            return
        after = found.after


def balances(
    conn: Connection,
    *,
    sharer_id: str | None = None,
    currency: str | None = None,
    as_of: int | None = None,
    size: int = PAGE,
) -> Table:
    def fetch(after: Any, limit: int) -> Page[Balance]:
        return balance_reads.balances(
            conn, sharer_id=sharer_id, currency=currency, as_of=as_of, after=after, limit=limit
        )

    return Table("balances", columns_of(Balance), pages(fetch, size))


def dead_letters(conn: Connection, *, reason: str | None = None, size: int = PAGE) -> Table:
    def fetch(after: Any, limit: int) -> Page[DeadLetter]:
        return operations.dead_letters(conn, reason=reason, after=after, limit=limit)

    columns = columns_of(DeadLetter)
    at = columns.index("redriven")

    def flat(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """A cell holds one value: the redrive as "<outcome> <event id>" (empty: none)."""
        for row in rows:
            mark = row[at]
            cell = None if mark is None else f"{mark.outcome} {mark.event_id}"
            yield (*row[:at], cell, *row[at + 1 :])

    return Table("dead letters", columns, flat(pages(fetch, size)))


def totals(
    conn: Connection,
    *,
    period: total_reads.Period = "day",
    currency: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> Table:
    """Totals are sums per period and currency: a few thousand rows for years of days."""
    rows = total_reads.totals(conn, period=period, currency=currency, start=start, end=end)
    columns = columns_of(Total)
    return Table("totals", columns, (tuple(getattr(r, c) for c in columns) for r in rows))


def payouts_by_level(
    conn: Connection,
    *,
    sharer_id: str | None = None,
    currency: str | None = None,
    size: int = PAGE,
) -> Table:
    states = FifoStates(conn, size)

    def fetch(after: Any, limit: int) -> Page[OrderLevel]:
        return order_levels(
            conn, states, sharer_id=sharer_id, currency=currency, after=after, limit=limit
        )

    return Table("payouts by level", columns_of(OrderLevel), pages(fetch, size))


def order_levels(
    conn: Connection,
    states: FifoStates,
    *,
    sharer_id: str | None = None,
    currency: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = PAGE,
) -> Page[OrderLevel]:
    """The payout-by-level view's rows by (sharer, order) (its key), with their states."""
    ol = v.view_order_levels
    query = select(ol).where(shown(ol)).order_by(ol.c.sharer_id, ol.c.order_id).limit(limit)
    if sharer_id is not None:
        query = query.where(ol.c.sharer_id == sharer_id)
    if currency is not None:
        query = query.where(ol.c.currency == currency)
    if after is not None:
        query = query.where(tuple_(ol.c.sharer_id, ol.c.order_id) > tuple_(*after))
    found = conn.execute(query).all()
    levels = states.states(found)
    rows = [
        OrderLevel(
            order_id=r.order_id,
            level=r.level,
            sharer_id=r.sharer_id,
            currency=r.currency,
            downline_id=r.downline_id,
            merchant_id=r.merchant_id,
            plan_id=r.plan_id,
            accrued=int(r.accrued),
            reversed=int(r.reversed),
            amount=int(r.accrued) - int(r.reversed),
            settled=int(r.settled),
            settled_at=r.settled_at,
            state=state,
        )
        for r, state in zip(found, levels, strict=True)
    ]
    return page(rows, limit, lambda r: (r.sharer_id, r.order_id))


class FifoStates:
    """``orders.level_state`` for pages of rows read sharer after sharer, without its
    per-row sum over the sharer's levels.

    First settled, first paid makes the paid levels of a (sharer, currency) a prefix of
    its settled levels in settlement order: those whose running total of ``settled``
    (this one included) stays within the sharer's paid total. One walk of that order per
    (sharer, currency) finds the first level that is not paid (its key, the ``cutoff``);
    a page's levels before it are found by one query, the database comparing the keys as
    ``level_state`` does (same collation). Only the current sharer's cutoffs are held."""

    def __init__(self, conn: Connection, page: int = PAGE) -> None:
        self.conn = conn
        self.page = page  # settled levels read at once while walking a sharer's
        self.sharer: str | None = None
        self.cutoffs: dict[str, tuple[Any, ...] | None] = {}

    def states(self, rows: Sequence[Any]) -> list[LevelState]:
        settled: dict[tuple[str, str], list[str]] = {}
        for r in rows:
            if not (r.accrued > 0 and r.accrued == r.reversed) and r.settled_at is not None:
                settled.setdefault((r.sharer_id, r.currency), []).append(r.order_id)
        paid: set[tuple[str, str]] = set()
        for (sharer, currency), order_ids in settled.items():
            paid.update((sharer, o) for o in self._paid(sharer, currency, order_ids))
        return [
            "reversed"
            if r.accrued > 0 and r.accrued == r.reversed
            else "pending"
            if r.settled_at is None
            else "paid"
            if (r.sharer_id, r.order_id) in paid
            else "available"
            for r in rows
        ]

    def _paid(self, sharer_id: str, currency: str, order_ids: list[str]) -> list[str]:
        if sharer_id != self.sharer:
            self.sharer, self.cutoffs = sharer_id, {}
        if currency not in self.cutoffs:
            self.cutoffs[currency] = self._cutoff(sharer_id, currency)
        cutoff = self.cutoffs[currency]
        if cutoff is None:
            return order_ids
        ol = v.view_order_levels
        key = tuple_(ol.c.settled_at, ol.c.settle_chain, ol.c.settle_chain_seq, ol.c.order_id)
        return list(
            self.conn.execute(
                select(ol.c.order_id).where(
                    shown(ol),
                    ol.c.sharer_id == sharer_id,
                    ol.c.order_id.in_(order_ids),
                    key < tuple_(*cutoff),
                )
            ).scalars()
        )

    def _cutoff(self, sharer_id: str, currency: str) -> tuple[Any, ...] | None:
        """The settlement key of the sharer's first level the paid total does not cover
        (None: it covers them all), walking its settled levels a page at a time."""
        b, ol = v.view_balances, v.view_order_levels
        paid = self.conn.execute(
            select(b.c.paid).where(shown(b), b.c.sharer_id == sharer_id, b.c.currency == currency)
        ).scalar()
        budget = int(paid or 0)
        key = (ol.c.settled_at, ol.c.settle_chain, ol.c.settle_chain_seq, ol.c.order_id)
        total, after = 0, None
        while True:
            query = (
                select(*key, ol.c.settled)
                .where(
                    shown(ol),
                    ol.c.sharer_id == sharer_id,
                    ol.c.currency == currency,
                    ol.c.settled_at.is_not(None),
                )
                .order_by(*key)
                .limit(self.page)
            )
            if after is not None:
                query = query.where(tuple_(*key) > tuple_(*after))
            rows = self.conn.execute(query).all()
            for *level_key, settled in rows:
                total += int(settled)
                if total > budget:
                    return tuple(level_key)
            if len(rows) < self.page:
                return None
            after = tuple(rows[-1][:4])
