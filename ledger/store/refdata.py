"""The kinds of reference data the ledger stores, one descriptor each: its table and key,
row <-> model, what a batch's ``Changes`` add, change or remove of it, and the form in
which ``verify`` compares a stored row with the replayed one.

Read by the state loader and writer (state_sql.py), the verifier's replay store
(audit.py) and its comparison (replay.py): a new kind is its table (tables.py), its
migration and one descriptor here (plus the domain's model and rules).

Rows are mappings by column name: a SQLAlchemy ``RowMapping`` when loading, a plain dict
in verify.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Column, Table

from ledger.domain.model import Click, Line, Order, ParkedEvent, Payout, Sharer
from ledger.domain.money import Split
from ledger.domain.plans import Plan
from ledger.domain.state import Changes
from ledger.payload import dump_event, load_event
from ledger.store import tables as t

M = TypeVar("M")
Row = Mapping[Any, Any]  # by column name (RowMapping is keyed by more than str)

_dumps = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call


def _nothing(_: Changes) -> Sequence[Any]:
    return ()


@dataclass(frozen=True)
class Kind(Generic[M]):
    """One kind of stored reference data.

    ``mutable``: how a row changes after it was written: None (never: written once),
    ``"row"`` (replaced whole: deleted and inserted again, a slice at a time) or the
    columns updated in place. Rows that may change or leave (``removed``) are read
    ``FOR UPDATE`` by the service. ``stamped``: a column the writer sets to the time of
    writing, which no event implies (verify does not compare it).
    """

    table: Table
    key: str
    to_row: Callable[[M], dict[str, Any]]
    from_row: Callable[[Row], M]
    added: Callable[[Changes], Sequence[M]]
    changed: Callable[[Changes], Sequence[M]] = _nothing
    removed: Callable[[Changes], Sequence[str]] = _nothing  # keys of rows that leave
    mutable: Literal["row"] | tuple[str, ...] | None = None
    stamped: str | None = None
    # the form verify compares (both sides); None: the tuple of the other columns
    verify_form: Callable[[Row], Any] | None = None
    key_of: Callable[[M], str] | None = None  # a model's key; None: its attribute ``key``

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def column(self) -> Column[Any]:
        return self.table.c[self.key]

    def key_of_model(self, model: M) -> str:
        return self.key_of(model) if self.key_of is not None else getattr(model, self.key)

    @property
    def locked(self) -> bool:
        """Whether the service reads the rows ``FOR UPDATE`` (they may change or leave)."""
        return self.mutable is not None or self.removed is not _nothing

    def rows(self, models: Sequence[M], now_ms: int) -> list[dict[str, Any]]:
        rows = [self.to_row(m) for m in models]
        if self.stamped is not None:
            for row in rows:
                row[self.stamped] = now_ms
        return rows

    def touched(self, changes: Changes) -> list[str]:
        """The keys of every row ``changes`` writes or deletes."""
        written = (*self.added(changes), *self.changed(changes))
        return [self.key_of_model(m) for m in written] + list(self.removed(changes))

    def compared(self, row: Row) -> Any:
        if self.verify_form is not None:
            return self.verify_form(row)
        return tuple(row[c] for c in self._compared_columns)

    @cached_property  # verify compares every row: the columns are worked out once
    def _compared_columns(self) -> tuple[str, ...]:
        skip = {self.key, self.stamped}
        return tuple(c.name for c in self.table.columns if c.name not in skip)


# --- plans: the plan's fields as JSON in ``body`` -----------------------------------------


def plan_json(p: Plan) -> str:
    # json writes tuples as lists: level shares [l1, l2, l3], minimums [[currency, amount]]
    return json.dumps({f.name: getattr(p, f.name) for f in fields(Plan)}, sort_keys=True)


def plan_from_json(body: str) -> Plan:
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


def _plan_row(p: Plan) -> dict[str, Any]:
    return {"plan_id": p.plan_id, "effective_from": p.effective_from, "body": plan_json(p)}


def _checked_plan(r: Row) -> Any:
    """The plan a row holds, or why it holds none (a forged row may hold anything)."""
    try:
        plan = plan_from_json(r["body"])
    except Exception as exc:  # noqa: BLE001 - an altered body may hold anything
        return f"an unreadable body ({exc!r})"
    if (plan.plan_id, plan.effective_from) != (r["plan_id"], r["effective_from"]):
        return "a body that disagrees with its plan_id or effective_from"
    return plan


PLANS: Kind[Plan] = Kind(
    t.plans,
    "plan_id",
    to_row=_plan_row,
    from_row=lambda r: plan_from_json(r["body"]),
    added=lambda c: c.plans,
    verify_form=_checked_plan,
)


# --- sharers, clicks ----------------------------------------------------------------------

SHARERS: Kind[Sharer] = Kind(
    t.sharers,
    "sharer_id",
    to_row=lambda s: {
        "sharer_id": s.sharer_id,
        "upline_id": s.upline_id,
        "enrolled_at": s.enrolled_at,
    },
    from_row=lambda r: Sharer(r["sharer_id"], r["upline_id"], r["enrolled_at"]),
    added=lambda c: c.sharers,
)

CLICKS: Kind[Click] = Kind(
    t.clicks,
    "click_id",
    to_row=lambda k: {
        "click_id": k.click_id,
        "buyer_id": k.buyer_id,
        "sharer_id": k.sharer_id,
        "occurred_at": k.occurred_at,
        "arrival": k.arrival,
    },
    from_row=lambda r: Click(
        r["click_id"], r["buyer_id"], r["sharer_id"], r["occurred_at"], r["arrival"]
    ),
    added=lambda c: c.clicks,
)


# --- orders: levels, lines and posted commission as JSON ----------------------------------


def order_from_row(r: Row) -> Order:
    posted = json.loads(r["posted"])
    return Order(
        order_id=r["order_id"],
        buyer_id=r["buyer_id"],
        merchant_id=r["merchant_id"],
        currency=r["currency"],
        occurred_at=r["occurred_at"],
        plan_id=r["plan_id"],
        levels=tuple(json.loads(r["levels"])),
        lines={
            line_id: Line(line_id, amount, rate, refunded)
            for line_id, amount, rate, refunded in json.loads(r["lines"])
        },
        posted=Split(posted["fee"], tuple(posted["levels"])),
        no_commission_reason=r["no_commission_reason"],
        completed_at=r["completed_at"],
        settle_due=r["settle_due"],
        settled_by=r["settled_by"],
    )


def order_to_row(o: Order) -> dict[str, Any]:
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


ORDERS: Kind[Order] = Kind(
    t.orders,
    "order_id",
    to_row=order_to_row,
    from_row=order_from_row,
    added=lambda c: c.new_orders,
    changed=lambda c: c.changed_orders,
    mutable="row",  # refunds, completion, settlement: two set statements, not one per row
    # every column as stored (the JSON text too: reformatted JSON counts as altered), by
    # name, so that a difference names its column
    verify_form=lambda r: {c.name: r[c.name] for c in t.orders.columns},
)


# --- refunds, payouts, settlement runs ----------------------------------------------------

REFUNDS: Kind[tuple[str, str]] = Kind(  # (refund_id, order_id)
    t.refunds,
    "refund_id",
    to_row=lambda r: {"refund_id": r[0], "order_id": r[1]},
    from_row=lambda r: (r["refund_id"], r["order_id"]),
    added=lambda c: c.refunds,
    key_of=lambda r: r[0],
)

PAYOUTS: Kind[Payout] = Kind(
    t.payouts,
    "payout_id",
    to_row=lambda p: {
        "payout_id": p.payout_id,
        "sharer_id": p.sharer_id,
        "currency": p.currency,
        "amount": p.amount,
        "state": p.state,
    },
    from_row=lambda r: Payout(
        r["payout_id"], r["sharer_id"], r["currency"], r["amount"], r["state"]
    ),
    added=lambda c: c.new_payouts,
    changed=lambda c: c.changed_payouts,
    mutable=("state",),  # settled, failed
)

SETTLEMENT_RUNS: Kind[tuple[str, int]] = Kind(  # (run_id, as_of)
    t.settlement_runs,
    "run_id",
    to_row=lambda r: {"run_id": r[0], "as_of": r[1]},
    from_row=lambda r: (r["run_id"], r["as_of"]),
    added=lambda c: c.runs,
    key_of=lambda r: r[0],
)


# --- parked events: the event in its stored form -----------------------------------------

PARKED: Kind[ParkedEvent] = Kind(
    t.parked,
    "event_id",
    to_row=lambda p: {
        "event_id": p.event.event_id,
        "waits_for": p.waits_for,
        "subject": p.subject,
        "arrival": p.arrival,
        "type": p.event.TYPE,
        "source": p.source,
        "payload": dump_event(p.event),
    },
    from_row=lambda r: ParkedEvent(
        load_event(r["payload"]), r["arrival"], r["source"], r["waits_for"]
    ),
    added=lambda c: c.parked,
    removed=lambda c: c.released,  # released: no longer waiting
    stamped="parked_at",
    key_of=lambda p: p.event.event_id,
)


# In the order the writer writes them (as before: the order of the statements is kept).
KINDS: tuple[Kind[Any], ...] = (
    PLANS,
    SHARERS,
    CLICKS,
    ORDERS,
    REFUNDS,
    PAYOUTS,
    SETTLEMENT_RUNS,
    PARKED,
)
BY_NAME: dict[str, Kind[Any]] = {kind.name: kind for kind in KINDS}
