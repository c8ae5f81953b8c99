"""Read-side queries straight from the journal: balances, dead letters, parked events.

Balances are sums of postings, optionally as of an event time, so they need no view and
cannot drift from the journal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Select, Table, func, select

from ledger.domain import refs
from ledger.domain.entries import (
    SHARER_ACCOUNTS_LIKE,
    SHARER_BUCKETS,
    sharer_accounts,
    split_sharer_account,
)
from ledger.domain.kinds import RefKind
from ledger.store import tables as t
from ledger.store.dead_letters import dead_letter_key
from ledger.store.store import Store

BUCKETS = SHARER_BUCKETS


@dataclass(frozen=True)
class SharerBalance:
    sharer_id: str
    currency: str
    pending: int = 0
    available: int = 0
    inflight: int = 0
    paid: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def sharer_balances(
    store: Store, *, sharer_id: str | None = None, as_of: int | None = None
) -> list[SharerBalance]:
    """Per (sharer, currency): pending, available, in-flight, paid, from postings whose
    event time is at or before ``as_of`` (all postings when None)."""
    p = t.postings
    query = _sums(store, as_of)
    if sharer_id is not None:
        query = query.where(p.c.account.in_(sharer_accounts(sharer_id)))
    else:
        query = query.where(p.c.account.like(SHARER_ACCOUNTS_LIKE))
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    with store.read() as conn:
        for account, currency, *parts in conn.execute(query):
            parsed = split_sharer_account(account)
            if parsed is not None:
                sharer, bucket = parsed
                totals[(sharer, currency)][bucket] = _total(parts)
    return [
        SharerBalance(sharer, currency, **{b: v for b, v in buckets.items() if b in BUCKETS})
        for (sharer, currency), buckets in sorted(totals.items())
    ]


def account_balances(store: Store, as_of: int | None = None) -> dict[tuple[str, str], int]:
    """Every (account, currency) with a non-zero balance."""
    with store.read() as conn:
        totals = {(a, c): _total(parts) for a, c, *parts in conn.execute(_sums(store, as_of))}
    return {key: total for key, total in totals.items() if total != 0}


def _sums(store: Store, as_of: int | None) -> Select[Any]:
    """(account, currency, Σ amount as parts for ``_total``) of the postings with event
    time ≤ ``as_of``.

    PostgreSQL's SUM of a BIGINT is an exact NUMERIC. SQLite's SUM fails ("integer
    overflow") as soon as a running total leaves int64, which an account whose balance
    stays in bounds still does when enough money flows in and out of it (the sum runs in
    index order, not event order). So SQLite sums the high and the low 32 bits of every
    amount apart (neither sum can overflow) and ``_total`` joins them."""
    p = t.postings
    if store.backend == "sqlite":
        parts = [func.sum(p.c.amount.op(">>")(32)), func.sum(p.c.amount.op("&")(0xFFFFFFFF))]
    else:
        parts = [func.sum(p.c.amount)]
    query = select(p.c.account, p.c.currency, *parts).group_by(p.c.account, p.c.currency)
    return query if as_of is None else query.where(p.c.occurred_at <= as_of)


def _total(parts: list[Any]) -> int:
    """Σ from ``_sums``'s parts: (Σ) or (Σ high 32 bits, Σ low 32 bits)."""
    if len(parts) == 1:
        return int(parts[0])
    high, low = parts
    return (int(high) << 32) + int(low)


def dead_letters(store: Store, limit: int = 1000) -> list[dict[str, object]]:
    d = t.dead_letters
    with store.read() as conn:
        rows = conn.execute(select(d).order_by(d.c.id).limit(limit))
        return [dict(r._mapping) for r in rows]


def parked_events(store: Store, limit: int = 1000) -> list[dict[str, object]]:
    q = t.parked
    with store.read() as conn:
        rows = conn.execute(
            select(q.c.event_id, q.c.type, q.c.waits_for, q.c.source, q.c.parked_at)
            .order_by(q.c.arrival)
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows]


# parked-reference prefix -> (table, key column) holding what the event waits for
_REFERENCES: dict[RefKind, tuple[Table, str]] = {
    refs.ORDER: (t.orders, "order_id"),
    refs.SHARER: (t.sharers, "sharer_id"),
    refs.PAYOUT: (t.payouts, "payout_id"),
}


def orphaned_parked(store: Store) -> list[dict[str, object]]:
    """Parked events whose reference is applied: they should have been released with it
    (SPEC §4.6). Never expected; each one is a defect to report, not to wait out."""
    q = t.parked
    out: list[dict[str, object]] = []
    with store.read() as conn:
        for prefix, (table, key) in _REFERENCES.items():
            column = table.c[key]
            ref = func.substr(q.c.waits_for, len(refs.ref(prefix, "")) + 1)
            rows = conn.execute(
                select(q.c.event_id, q.c.type, q.c.waits_for, q.c.source, q.c.parked_at)
                .where(q.c.waits_for.like(refs.ref(prefix, "%")))
                .where(select(column).where(column == ref).exists())
                .order_by(q.c.arrival)
            )
            out.extend(dict(r._mapping) for r in rows)
    return out


@dataclass(frozen=True)
class LoggedOutcome:
    """An event-log row as the idempotency of commands needs it: what was logged under an
    event id and what became of it on arrival (with the dead letter's reason if rejected)."""

    event_type: str
    payload: str  # the event's JSON form (ledger/payload.py)
    outcome: str  # applied | rejected | parked
    reason: str | None
    message: str | None


def logged_outcome(store: Store, event_id: str) -> LoggedOutcome | None:
    """The event logged under ``event_id`` and its outcome on arrival, or None."""
    e, d = t.events, t.dead_letters
    with store.read() as conn:
        row = conn.execute(
            select(e.c.type, e.c.source, e.c.payload, e.c.outcome).where(e.c.event_id == event_id)
        ).first()
        if row is None:
            return None
        reason = message = None
        if row.outcome == "rejected":  # its dead letter (same source and payload) says why
            key = dead_letter_key(row.source, row.payload)
            dead = conn.execute(select(d.c.reason, d.c.message).where(d.c.dedup_key == key)).first()
            if dead is not None:
                reason, message = dead.reason, dead.message
    return LoggedOutcome(row.type, row.payload, row.outcome, reason, message)
