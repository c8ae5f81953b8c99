"""Reference state in SQL: the ``StateLoader`` the engine reads through, and the writer of
a batch's ``Changes``. Runs inside the service's batch transaction.

Row <-> model is each kind's descriptor (ledger/store/refdata.py).

Locking (PostgreSQL): rows a batch may change after reading them (orders, payouts) are
read ``FOR UPDATE``, so two consumers never decide on the same order or payout from
stale state; they are taken in key order to avoid deadlocks. Sharers, clicks and plans
are written once and read without locks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.sql import Select

from ledger.domain import refs
from ledger.domain.events import SharerEnrolled
from ledger.domain.model import Click, Order, ParkedEvent, Payout, Sharer
from ledger.domain.plans import Plan
from ledger.domain.state import Changes, Probe
from ledger.store import tables as t
from ledger.store.refdata import (
    CLICKS,
    KINDS,
    ORDERS,
    PARKED,
    PAYOUTS,
    PLANS,
    REFUNDS,
    SETTLEMENT_RUNS,
    SHARERS,
    Kind,
    M,
    order_from_row,
)

CHUNK = 5_000  # keys per IN (...) list: far below every backend's parameter limit
_dumps = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call


def _chunks(keys: Iterable[Any], key: Callable[[Any], Any] = lambda k: k) -> Iterable[list[Any]]:
    """Sorted keys in slices. A key with a control character cannot be in the database
    (every stored id passed validation), and a driver may refuse it (NUL): it is skipped
    here, so an unvalidated event looked up before the rules reject it costs nothing.
    ``key``: the id within a compound key."""
    ordered = sorted(k for k in set(keys) if type(i := key(k)) is not str or i.isprintable())
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


class SqlStateLoader:
    def __init__(self, conn: Connection, *, lock_rows: bool) -> None:
        self.conn = conn
        self.lock_rows = lock_rows

    def _locked(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update() if self.lock_rows else query

    def plans(self) -> list[Plan]:
        return [PLANS.from_row(r) for r in self.conn.execute(select(t.plans)).mappings()]

    def sharers(self, ids: Iterable[str]) -> dict[str, Sharer]:
        return self._by_key(SHARERS, ids)

    def clicks(self, ids: Iterable[str]) -> dict[str, Click]:
        return self._by_key(CLICKS, ids)

    def latest_clicks(self, probes: Iterable[Probe]) -> dict[Probe, Click]:
        """One probe of ``ix_clicks_latest`` per (buyer, at, since): the cost of an order's
        attribution does not grow with its buyer's clicks."""
        postgres = self.conn.dialect.name == "postgresql"
        found: dict[Probe, Click] = {}
        for chunk in _chunks(probes, key=lambda p: p[0]):
            if postgres:
                buyers, ats, sinces = zip(*chunk, strict=True)
                params = {"buyers": list(buyers), "ats": list(ats), "sinces": list(sinces)}
                rows = self.conn.execute(_LATEST_CLICKS_PG, params)
            else:
                rows = self.conn.execute(_LATEST_CLICKS_SQLITE, {"probes": _dumps(chunk)})
            for buyer_id, at, since, click_id, sharer_id, occurred_at, arrival in rows:
                click = Click(click_id, buyer_id, sharer_id, occurred_at, arrival)
                found[(buyer_id, at, since)] = click
        return found

    def orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return self._by_key(ORDERS, ids)

    def orders_due(
        self, as_of: int, after: str | None = None, limit: int | None = None
    ) -> list[Order]:
        """One page of the due orders, by order id in code point order (the domain's
        ``sorted``): byte order of UTF-8, which is SQLite's BINARY and PostgreSQL's "C"
        collation, whatever the database's own. Read through the partial index of unsettled
        completed orders (migration 0009), so a page costs its rows, not the history."""
        o = t.orders
        key = o.c.order_id.collate("C") if self.conn.dialect.name == "postgresql" else o.c.order_id
        query = select(o).where(
            o.c.settled_by.is_(None), o.c.settle_due.is_not(None), o.c.settle_due <= as_of
        )
        if after is not None:
            query = query.where(key > after)
        query = query.order_by(key)
        if limit is not None:
            query = query.limit(limit)
        return [order_from_row(r) for r in self.conn.execute(self._locked(query)).mappings()]

    def refunds(self, ids: Iterable[str]) -> set[str]:
        return self._existing(REFUNDS.column, ids)

    def runs(self, ids: Iterable[str]) -> set[str]:
        return self._existing(SETTLEMENT_RUNS.column, ids)

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        return self._existing(t.events.c.event_id, event_ids)

    def payouts(self, ids: Iterable[str]) -> dict[str, Payout]:
        return self._by_key(PAYOUTS, ids)

    def _by_key(self, kind: Kind[M], ids: Iterable[str]) -> dict[str, M]:
        """The rows of ``ids`` that exist, as models; in key order ``FOR UPDATE`` when the
        kind's rows may change (so concurrent batches lock them in one order)."""
        found: dict[str, M] = {}
        column = kind.column
        for chunk in _chunks(ids):
            query = select(kind.table).where(column.in_(chunk))
            if kind.locked:
                query = self._locked(query.order_by(column))
            for r in self.conn.execute(query).mappings():
                found[r[kind.key]] = kind.from_row(r)
        return found

    def _existing(self, column: Column[str], ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids):
            found.update(self.conn.execute(select(column).where(column.in_(chunk))).scalars())
        return found

    def balances(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Σ over shards of ``account_balances`` (kept with the postings), not a sum of
        the postings: an account's history may be long."""
        wanted = set(keys)
        table = t.account_balances
        found: dict[tuple[str, str], int] = {}
        for chunk in _chunks({account for account, _ in wanted}):
            rows = self.conn.execute(
                select(table.c.account, table.c.currency, func.sum(table.c.balance))
                .where(table.c.account.in_(chunk))
                .group_by(table.c.account, table.c.currency)
            )
            for account, currency, total in rows:
                if (account, currency) in wanted:
                    found[(account, currency)] = int(total)
        return found

    def parked_for(self, refs: Iterable[str]) -> list[ParkedEvent]:
        found: list[ParkedEvent] = []
        for chunk in _chunks(refs):
            query = select(t.parked).where(t.parked.c.waits_for.in_(chunk))
            query = self._locked(query.order_by(t.parked.c.arrival))
            for r in self.conn.execute(query).mappings():
                found.append(PARKED.from_row(r))
        return found

    def waiting_enrollments(self, sharer_ids: Iterable[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for chunk in _chunks(sharer_ids):
            query = select(t.parked.c.subject, t.parked.c.waits_for).where(
                t.parked.c.subject.in_(chunk), t.parked.c.type == SharerEnrolled.TYPE
            )
            for subject, waits_for in self.conn.execute(query):
                found[subject] = refs.ref_id(waits_for, refs.SHARER)
        return found


# --- attribution's probe -------------------------------------------------------------------


# the latest click per probe p(buyer, at, since), the first received among same-time ones:
# ORDER BY ... LIMIT 1 in the order of ix_clicks_latest, so one index probe each
_LATEST = """
    FROM clicks
    WHERE buyer_id = p.buyer AND occurred_at <= p.at AND occurred_at >= p.since
    ORDER BY occurred_at DESC, arrival LIMIT 1"""
_LATEST_CLICKS_PG = text(
    f"""
    SELECT p.buyer, p.at, p.since, c.click_id, c.sharer_id, c.occurred_at, c.arrival
    FROM unnest(CAST(:buyers AS text[]), CAST(:ats AS bigint[]), CAST(:sinces AS bigint[]))
        AS p(buyer, at, since)
    CROSS JOIN LATERAL (SELECT click_id, sharer_id, occurred_at, arrival {_LATEST}) AS c"""
)

# SQLite has no arrays: the probes come as one JSON array of [buyer, at, since]
_LATEST_CLICKS_SQLITE = text(
    f"""
    WITH p(buyer, at, since) AS (
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
               json_extract(value, '$[2]')
        FROM json_each(:probes))
    SELECT p.buyer, p.at, p.since, c.click_id, c.sharer_id, c.occurred_at, c.arrival
    FROM p JOIN clicks AS c ON c.click_id = (SELECT click_id {_LATEST})"""
)


# --- writing a batch's changes ----------------------------------------------------------------


BulkInsert = Callable[[Connection, Table, Sequence[dict[str, Any]]], None]


def write_changes(conn: Connection, insert_rows: BulkInsert, changes: Changes, now_ms: int) -> None:
    """Persist ``changes``; ``insert_rows(conn, table, rows)`` is the backend's bulk insert.
    Kind by kind (refdata.KINDS): the rows that leave, the new rows, the changed ones."""
    for kind in KINDS:
        removed = kind.removed(changes)
        if removed:
            for chunk in _chunks(removed):
                conn.execute(delete(kind.table).where(kind.column.in_(chunk)))
        added = kind.added(changes)
        if added:
            insert_rows(conn, kind.table, kind.rows(added, now_ms))
        changed = kind.changed(changes)
        if changed:
            _rewrite(conn, insert_rows, kind, changed, now_ms)


def _rewrite(
    conn: Connection, insert_rows: BulkInsert, kind: Kind[M], changed: Sequence[M], now_ms: int
) -> None:
    """Write the new versions of rows this transaction read ``FOR UPDATE``."""
    by_key = {kind.key_of_model(m): m for m in changed}  # the latest version of each
    if kind.mutable == "row":
        # replaced whole: two set statements instead of one UPDATE per row, a slice at a
        # time so a settlement run's orders are never all rows at once
        for chunk in _chunks(by_key):
            conn.execute(delete(kind.table).where(kind.column.in_(chunk)))
            insert_rows(conn, kind.table, kind.rows([by_key[key] for key in chunk], now_ms))
    elif kind.mutable:
        rows = kind.rows(list(by_key.values()), now_ms)
        conn.execute(
            update(kind.table)
            .where(kind.column == bindparam("key"))
            .values({c: bindparam(f"new_{c}") for c in kind.mutable}),
            [{"key": r[kind.key], **{f"new_{c}": r[c] for c in kind.mutable}} for r in rows],
        )
    else:
        raise ValueError(f"{kind.name} rows are written once, never changed")
