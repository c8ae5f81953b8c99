"""Reference state in SQL: the ``StateLoader`` the engine reads through, and the writer of
a batch's ``Changes``. Runs inside the service's batch transaction.

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
from ledger.domain.model import Click, Line, Order, ParkedEvent, Payout, Sharer
from ledger.domain.money import Split
from ledger.domain.plans import Plan
from ledger.domain.state import Changes, Probe
from ledger.payload import dump_event, load_event
from ledger.store import tables as t

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
        rows = self.conn.execute(select(t.plans.c.body)).scalars()
        return [_plan_from_json(body) for body in rows]

    def sharers(self, ids: Iterable[str]) -> dict[str, Sharer]:
        found: dict[str, Sharer] = {}
        for chunk in _chunks(ids):
            rows = self.conn.execute(select(t.sharers).where(t.sharers.c.sharer_id.in_(chunk)))
            for r in rows:
                found[r.sharer_id] = Sharer(r.sharer_id, r.upline_id, r.enrolled_at)
        return found

    def clicks(self, ids: Iterable[str]) -> dict[str, Click]:
        found: dict[str, Click] = {}
        for chunk in _chunks(ids):
            rows = self.conn.execute(select(*_CLICK_COLUMNS).where(t.clicks.c.click_id.in_(chunk)))
            for click_id, buyer_id, sharer_id, occurred_at, arrival in rows:
                found[click_id] = Click(click_id, buyer_id, sharer_id, occurred_at, arrival)
        return found

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
        found: dict[str, Order] = {}
        for chunk in _chunks(ids):
            query = select(t.orders).where(t.orders.c.order_id.in_(chunk))
            query = self._locked(query.order_by(t.orders.c.order_id))
            for r in self.conn.execute(query):
                found[r.order_id] = _order(r)
        return found

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
        return [_order(r) for r in self.conn.execute(self._locked(query))]

    def refunds(self, ids: Iterable[str]) -> set[str]:
        return self._existing(t.refunds.c.refund_id, ids)

    def runs(self, ids: Iterable[str]) -> set[str]:
        return self._existing(t.settlement_runs.c.run_id, ids)

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        return self._existing(t.events.c.event_id, event_ids)

    def _existing(self, column: Column[str], ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids):
            found.update(self.conn.execute(select(column).where(column.in_(chunk))).scalars())
        return found

    def payouts(self, ids: Iterable[str]) -> dict[str, Payout]:
        found: dict[str, Payout] = {}
        for chunk in _chunks(ids):
            query = select(t.payouts).where(t.payouts.c.payout_id.in_(chunk))
            for r in self.conn.execute(self._locked(query.order_by(t.payouts.c.payout_id))):
                found[r.payout_id] = Payout(r.payout_id, r.sharer_id, r.currency, r.amount, r.state)
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
            for r in self.conn.execute(self._locked(query.order_by(t.parked.c.arrival))):
                found.append(ParkedEvent(load_event(r.payload), r.arrival, r.source, r.waits_for))
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


# --- row <-> model ------------------------------------------------------------------------


# selected by position and unpacked straight into Click: clicks are the most loaded rows
_CLICK_COLUMNS = (
    t.clicks.c.click_id,
    t.clicks.c.buyer_id,
    t.clicks.c.sharer_id,
    t.clicks.c.occurred_at,
    t.clicks.c.arrival,
)


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


def _order(r: Any) -> Order:
    posted = json.loads(r.posted)
    return Order(
        order_id=r.order_id,
        buyer_id=r.buyer_id,
        merchant_id=r.merchant_id,
        currency=r.currency,
        occurred_at=r.occurred_at,
        plan_id=r.plan_id,
        levels=tuple(json.loads(r.levels)),
        lines={
            line_id: Line(line_id, amount, rate, refunded)
            for line_id, amount, rate, refunded in json.loads(r.lines)
        },
        posted=Split(posted["fee"], tuple(posted["levels"])),
        no_commission_reason=r.no_commission_reason,
        completed_at=r.completed_at,
        settle_due=r.settle_due,
        settled_by=r.settled_by,
    )


def _order_row(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "buyer_id": o.buyer_id,
        "merchant_id": o.merchant_id,
        "currency": o.currency,
        "occurred_at": o.occurred_at,
        "plan_id": o.plan_id,
        "levels": _dumps(list(o.levels)),
        "lines": _dumps([[x.line_id, x.amount, x.rate_bps, x.refunded] for x in o.lines.values()]),
        "posted": _dumps({"fee": o.posted.fee, "levels": list(o.posted.levels)}),
        "no_commission_reason": o.no_commission_reason,
        "completed_at": o.completed_at,
        "settle_due": o.settle_due,
        "settled_by": o.settled_by,
    }


def _plan_json(p: Plan) -> str:
    return json.dumps(
        {
            "plan_id": p.plan_id,
            "effective_from": p.effective_from,
            "default_rate_bps": p.default_rate_bps,
            "platform_fee_bps": p.platform_fee_bps,
            "level_shares_bps": list(p.level_shares_bps),
            "frozen_days": p.frozen_days,
            "attribution_window_days": p.attribution_window_days,
            "self_purchase_allowed": p.self_purchase_allowed,
            "min_payouts": [list(m) for m in p.min_payouts],
        },
        sort_keys=True,
    )


def _plan_from_json(body: str) -> Plan:
    d = json.loads(body)
    shares = d["level_shares_bps"]
    return Plan(
        plan_id=d["plan_id"],
        effective_from=d["effective_from"],
        default_rate_bps=d["default_rate_bps"],
        platform_fee_bps=d["platform_fee_bps"],
        level_shares_bps=(shares[0], shares[1], shares[2]),
        frozen_days=d["frozen_days"],
        attribution_window_days=d["attribution_window_days"],
        self_purchase_allowed=d["self_purchase_allowed"],
        min_payouts=tuple((c, a) for c, a in d["min_payouts"]),
    )


# --- writing a batch's changes ----------------------------------------------------------------


BulkInsert = Callable[[Connection, Table, Sequence[dict[str, Any]]], None]


def write_changes(conn: Connection, insert_rows: BulkInsert, changes: Changes, now_ms: int) -> None:
    """Persist ``changes``; ``insert_rows(conn, table, rows)`` is the backend's bulk insert."""
    c = changes
    if c.plans:
        insert_rows(
            conn,
            t.plans,
            [
                {"plan_id": p.plan_id, "effective_from": p.effective_from, "body": _plan_json(p)}
                for p in c.plans
            ],
        )
    if c.sharers:
        insert_rows(
            conn,
            t.sharers,
            [
                {"sharer_id": s.sharer_id, "upline_id": s.upline_id, "enrolled_at": s.enrolled_at}
                for s in c.sharers
            ],
        )
    if c.clicks:
        insert_rows(
            conn,
            t.clicks,
            [
                {
                    "click_id": k.click_id,
                    "buyer_id": k.buyer_id,
                    "sharer_id": k.sharer_id,
                    "occurred_at": k.occurred_at,
                    "arrival": k.arrival,
                }
                for k in c.clicks
            ],
        )
    if c.new_orders:
        insert_rows(conn, t.orders, [_order_row(o) for o in c.new_orders])
    if c.changed_orders:
        # replace the changed rows: two set statements instead of one UPDATE per row
        # (the rows are locked FOR UPDATE by this transaction since they were read), a
        # slice at a time so a settlement run's orders are never all rows at once
        by_id = {o.order_id: o for o in c.changed_orders}
        for chunk in _chunks(by_id):
            conn.execute(delete(t.orders).where(t.orders.c.order_id.in_(chunk)))
            insert_rows(conn, t.orders, [_order_row(by_id[order_id]) for order_id in chunk])
    if c.refunds:
        insert_rows(conn, t.refunds, [{"refund_id": r, "order_id": o} for r, o in c.refunds])
    if c.new_payouts:
        insert_rows(conn, t.payouts, [_payout_row(p) for p in c.new_payouts])
    if c.changed_payouts:
        conn.execute(
            update(t.payouts)
            .where(t.payouts.c.payout_id == bindparam("key"))
            .values(state=bindparam("new_state")),
            [{"key": p.payout_id, "new_state": p.state} for p in c.changed_payouts],
        )
    if c.runs:
        insert_rows(conn, t.settlement_runs, [{"run_id": r, "as_of": a} for r, a in c.runs])
    if c.released:
        for chunk in _chunks(c.released):
            conn.execute(delete(t.parked).where(t.parked.c.event_id.in_(chunk)))
    if c.parked:
        insert_rows(
            conn,
            t.parked,
            [
                {
                    "event_id": p.event.event_id,
                    "waits_for": p.waits_for,
                    "subject": p.subject,
                    "arrival": p.arrival,
                    "type": p.event.TYPE,
                    "source": p.source,
                    "payload": dump_event(p.event),
                    "parked_at": now_ms,
                }
                for p in c.parked
            ],
        )


def _payout_row(p: Payout) -> dict[str, Any]:
    return {
        "payout_id": p.payout_id,
        "sharer_id": p.sharer_id,
        "currency": p.currency,
        "amount": p.amount,
        "state": p.state,
    }


# public names for verify's replay check (ledger/store/replay.py), which compares stored
# rows with the state a replay implies, in exactly the form the writer above stores
order_from_row = _order
order_to_row = _order_row
plan_from_json = _plan_from_json
