"""``ledger check``: compare every view with a recomputation from the journal.

Reads one snapshot. Each view is compared with ``recompute`` over exactly the entries its
checkpoints say it holds (a view that lags the journal is not drift; a wrong row is).
Returns the differences as ``Drift`` rows: a changed cell, a missing row or an extra row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ledger.domain.entries import JournalEntry, Posting
from ledger.store import tables as t
from ledger.store import view_tables as v
from ledger.store.store import Store
from projectors import catalog
from projectors.recompute import OrderInfo, Views, recompute
from projectors.runner import checkpoints

_PAGE = 5_000

# view name -> (table, key columns, value columns), value columns in recompute's order
_LAYOUT: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...]]] = {
    "balances": (
        v.view_balances,
        ("sharer_id", "currency"),
        ("pending", "available", "inflight", "paid", "earned", "reversed"),
    ),
    "payouts": (
        v.view_order_levels,
        ("order_id", "sharer_id"),
        (
            "level",
            "currency",
            "downline_id",
            "merchant_id",
            "plan_id",
            "accrued",
            "reversed",
            "settled",
            "settled_at",
            "settle_chain",
            "settle_chain_seq",
        ),
    ),
    "totals": (v.view_fee_totals, ("day", "currency"), ("fees", "merchant_charges")),
}


@dataclass(frozen=True)
class Drift:
    view: str
    key: tuple[Any, ...]
    column: str  # "(missing row)" / "(extra row)" for a whole row
    stored: Any
    expected: Any

    def __str__(self) -> str:
        return (
            f"{self.view} {self.key}: {self.column} is {self.stored!r}, "
            f"the journal says {self.expected!r}"
        )


def check(store: Store, views: str | list[str] | None = None) -> list[Drift]:
    """Every difference between the named views (all when None) and the journal."""
    drifts: list[Drift] = []
    with store.read() as conn:
        orders = _orders(conn)
        for projector in catalog.select(views):
            bounds = checkpoints(conn, projector.name)
            expected = recompute(_entries(conn, bounds), orders)
            drifts.extend(_compare(conn, projector.name, expected))
    return drifts


def _expected_rows(name: str, views: Views) -> dict[tuple[Any, ...], list[Any]]:
    source: Any = {
        "balances": views.balances,
        "payouts": views.order_levels,
        "totals": views.fee_totals,
    }[name]
    return dict(source)


def _compare(conn: Connection, name: str, views: Views) -> list[Drift]:
    table, keys, values = _LAYOUT[name]
    expected = _expected_rows(name, views)
    out: list[Drift] = []
    for row in conn.execute(select(table).where(catalog.shown(table))).mappings():
        key = tuple(row[k] for k in keys)
        want = expected.pop(key, None)
        if want is None:
            out.append(Drift(name, key, "(extra row)", [row[c] for c in values], None))
            continue
        for column, wanted in zip(values, want, strict=True):
            if row[column] != wanted:
                out.append(Drift(name, key, column, row[column], wanted))
    out.extend(Drift(name, key, "(missing row)", None, want) for key, want in expected.items())
    return out


def _orders(conn: Connection) -> dict[str, OrderInfo]:
    o = t.orders
    rows = conn.execute(
        select(o.c.order_id, o.c.levels, o.c.currency, o.c.merchant_id, o.c.plan_id).where(
            o.c.levels != "[]"
        )
    )
    return {
        r.order_id: OrderInfo(tuple(json.loads(r.levels)), r.currency, r.merchant_id, r.plan_id)
        for r in rows
    }


def _entries(conn: Connection, bounds: dict[str, int]) -> Iterator[tuple[str, int, JournalEntry]]:
    """(chain, chain_seq, entry) of every entry up to ``bounds[chain]``, page by page."""
    e, p = t.entries, t.postings
    for chain, top in sorted(bounds.items()):
        after = 0
        while after < top:
            upper = min(top, after + _PAGE)
            in_range = (e.c.chain == chain) & (e.c.chain_seq > after) & (e.c.chain_seq <= upper)
            postings: dict[int, list[Posting]] = {}
            for r in conn.execute(
                select(p.c.entry_seq, p.c.account, p.c.currency, p.c.amount)
                .join(e, e.c.seq == p.c.entry_seq)
                .where(in_range)
                .order_by(p.c.entry_seq, p.c.ordinal)
            ):
                postings.setdefault(r.entry_seq, []).append(
                    Posting(r.account, r.currency, r.amount)
                )
            for r in conn.execute(select(e).where(in_range).order_by(e.c.chain_seq)):
                yield (
                    chain,
                    r.chain_seq,
                    JournalEntry(
                        r.event_id,
                        r.ordinal,
                        r.kind,
                        r.rule,
                        r.occurred_at,
                        tuple(postings.get(r.seq, ())),
                        r.plan_id,
                        r.order_id,
                        r.payout_id,
                    ),
                )
            after = upper
