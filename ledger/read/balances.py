"""A sharer's balances, two ways: from the balances view (what the API and dashboard show,
cheap at any size) and summed from the journal's postings (the definition, which
``ledger balances`` prints and every other computation is checked against: the view by
``ledger check``, the running ``account_balances`` by the bound checks' tests)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

from sqlalchemy import Connection, Select, func, select, tuple_

from ledger.domain.entries import (
    SHARER_ACCOUNTS_LIKE,
    SHARER_BUCKETS,
    sharer_accounts,
    split_sharer_account,
)
from ledger.read.models import Balance, JournalBalance, Page, page
from ledger.store import tables as t
from ledger.store import view_tables as v
from projectors.catalog import shown
from projectors.runner import checkpoints

FIGURES = tuple(f.name for f in fields(Balance) if f.init)[2:]  # pending … reversed


def balances(
    conn: Connection,
    *,
    sharer_id: str | None = None,
    currency: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
    as_of: int | None = None,
) -> Page[Balance]:
    """Balances per (sharer, currency), ordered by both; as of event time ``as_of`` when
    given (the view minus what was posted after it: cheap for recent times)."""
    b = v.view_balances
    query = select(b).where(shown(b)).order_by(b.c.sharer_id, b.c.currency).limit(limit)
    if sharer_id is not None:
        query = query.where(b.c.sharer_id == sharer_id)
    if currency is not None:
        query = query.where(b.c.currency == currency)
    if after is not None:
        query = query.where(tuple_(b.c.sharer_id, b.c.currency) > tuple_(*after))
    rows = [
        Balance(r.sharer_id, r.currency, *(int(getattr(r, f)) for f in FIGURES))
        for r in conn.execute(query)
    ]
    found = page(rows, limit, lambda r: (r.sharer_id, r.currency))
    if as_of is None or not rows:
        return found
    return Page(tuple(_rewind(conn, rows, as_of)), found.after)


def _rewind(conn: Connection, rows: list[Balance], as_of: int) -> list[Balance]:
    """Subtract what the view holds from entries after ``as_of`` (only entries within the
    balances checkpoints, so the result is exact for what the view has seen). The postings
    after ``as_of`` come by the (account, currency, occurred_at) index: few for recent times."""
    e, p = t.entries, t.postings
    accounts = [account for r in rows for account in sharer_accounts(r.sharer_id)]
    held = checkpoints(conn, "balances")
    figures = {(r.sharer_id, r.currency): {f: getattr(r, f) for f in FIGURES} for r in rows}
    for account, currency, kind, amount, chain, chain_seq in conn.execute(
        select(p.c.account, p.c.currency, e.c.kind, p.c.amount, e.c.chain, e.c.chain_seq)
        .join(e, e.c.seq == p.c.entry_seq)
        .where(p.c.account.in_(accounts), p.c.occurred_at > as_of)
    ):
        parsed = split_sharer_account(account)
        row = figures.get((parsed[0], currency)) if parsed else None
        if row is None or parsed is None or chain_seq > held.get(chain, 0):
            continue
        row[parsed[1]] -= int(amount)
        if kind == "accrual":
            row["earned"] -= int(amount)
        elif kind == "reversal":
            row["reversed"] += int(amount)
    rewound = [replace(r, **figures[(r.sharer_id, r.currency)]) for r in rows]
    return [r for r in rewound if any(getattr(r, f) for f in FIGURES)]


def journal_balances(
    conn: Connection,
    *,
    sharer_id: str | None = None,
    as_of: int | None = None,
) -> list[JournalBalance]:
    """Per (sharer, currency): pending, available, in-flight, paid, from postings whose
    event time is at or before ``as_of`` (all postings when None)."""
    p = t.postings
    query = _sums(conn.dialect.name, as_of)
    if sharer_id is not None:
        query = query.where(p.c.account.in_(sharer_accounts(sharer_id)))
    else:
        query = query.where(p.c.account.like(SHARER_ACCOUNTS_LIKE))
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for account, currency, *parts in conn.execute(query):
        parsed = split_sharer_account(account)
        if parsed is not None:
            sharer, bucket = parsed
            totals[(sharer, currency)][bucket] = _total(parts)
    return [
        JournalBalance(
            sharer, currency, **{b: v for b, v in buckets.items() if b in SHARER_BUCKETS}
        )
        for (sharer, currency), buckets in sorted(totals.items())
    ]


def account_balances(conn: Connection, as_of: int | None = None) -> dict[tuple[str, str], int]:
    """Every (account, currency) with a non-zero balance."""
    totals = {
        (a, c): _total(parts) for a, c, *parts in conn.execute(_sums(conn.dialect.name, as_of))
    }
    return {key: total for key, total in totals.items() if total != 0}


def _sums(backend: str, as_of: int | None) -> Select:  # type: ignore[type-arg]
    """(account, currency, Σ amount as parts for ``_total``) of the postings with event
    time ≤ ``as_of``.

    PostgreSQL's SUM of a BIGINT is an exact NUMERIC. SQLite's SUM fails ("integer
    overflow") as soon as a running total leaves int64, which an account whose balance
    stays in bounds still does when enough money flows in and out of it (the sum runs in
    index order, not event order). So SQLite sums the high and the low 32 bits of every
    amount apart (neither sum can overflow) and ``_total`` joins them."""
    p = t.postings
    if backend == "sqlite":
        parts = [func.sum(p.c.amount.op(">>")(32)), func.sum(p.c.amount.op("&")(0xFFFFFFFF))]
    else:
        parts = [func.sum(p.c.amount)]
    query = select(p.c.account, p.c.currency, *parts).group_by(p.c.account, p.c.currency)
    return query if as_of is None else query.where(p.c.occurred_at <= as_of)


def _total(parts: Sequence[Any]) -> int:
    """Σ from ``_sums``'s parts: (Σ) or (Σ high 32 bits, Σ low 32 bits)."""
    if len(parts) == 1:
        return int(parts[0])
    high, low = parts
    return (int(high) << 32) + int(low)
