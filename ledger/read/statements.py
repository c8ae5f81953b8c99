"""A sharer's monthly statement (对账单), from the journal: the opening and closing balance
of each bucket, and every posting between them with its provenance (order, level, plan,
rule, entry). Opening + the lines = closing, bucket by bucket, by construction: all three
are sums of the same postings, cut at the period's start and end (event time, UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from ledger.domain.entries import SHARER_BUCKETS, sharer_accounts, split_sharer_account
from ledger.read.balances import journal_balances
from ledger.read.models import Statement, StatementLine
from ledger.store import tables as t


class BadPeriod(ValueError):
    """Not a month as YYYY-MM."""


def month(text: str) -> tuple[int, int]:
    """[start, end) in ms of the UTC month ``YYYY-MM``."""
    try:
        first = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadPeriod(f"not a month: {text!r} (YYYY-MM, e.g. 2026-01)") from exc
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return int(first.timestamp() * 1000), int(following.timestamp() * 1000)


def statement(conn: Connection, sharer_id: str, currency: str, start: int, end: int) -> Statement:
    """The statement of ``sharer_id`` in ``currency`` for event times in [start, end)."""
    e, p, o = t.entries, t.postings, t.orders
    rows = conn.execute(
        select(
            p.c.account,
            p.c.amount,
            e.c.occurred_at,
            e.c.kind,
            e.c.rule,
            e.c.order_id,
            e.c.plan_id,
            e.c.payout_id,
            e.c.event_id,
            e.c.chain,
            e.c.chain_seq,
            e.c.hash,
        )
        .join(e, e.c.seq == p.c.entry_seq)
        .where(
            p.c.account.in_(sharer_accounts(sharer_id)),
            p.c.currency == currency,
            p.c.occurred_at >= start,
            p.c.occurred_at < end,
        )
        .order_by(p.c.occurred_at, e.c.seq, p.c.ordinal)
    ).all()
    order_ids = {r.order_id for r in rows if r.order_id is not None}
    levels = {
        oid: json.loads(lv)
        for oid, lv in conn.execute(
            select(o.c.order_id, o.c.levels).where(o.c.order_id.in_(order_ids))
        )
    }
    lines = []
    for r in rows:
        parsed = split_sharer_account(r.account)
        assert parsed is not None  # the accounts asked for are the sharer's
        chain_of = levels.get(r.order_id, [])
        lines.append(
            StatementLine(
                occurred_at=r.occurred_at,
                bucket=parsed[1],
                amount=int(r.amount),
                kind=r.kind,
                rule=r.rule,
                order_id=r.order_id,
                level=chain_of.index(sharer_id) + 1 if sharer_id in chain_of else None,
                plan_id=r.plan_id,
                payout_id=r.payout_id,
                event_id=r.event_id,
                chain=r.chain,
                chain_seq=int(r.chain_seq),
                hash=r.hash,
            )
        )
    return Statement(
        sharer_id=sharer_id,
        currency=currency,
        start=start,
        end=end,
        opening=_buckets(conn, sharer_id, currency, start - 1),
        closing=_buckets(conn, sharer_id, currency, end - 1),
        lines=tuple(lines),
    )


def _buckets(conn: Connection, sharer_id: str, currency: str, as_of: int) -> dict[str, int]:
    found = [
        b
        for b in journal_balances(conn, sharer_id=sharer_id, as_of=as_of)
        if b.currency == currency
    ]
    return {bucket: getattr(found[0], bucket) if found else 0 for bucket in SHARER_BUCKETS}
