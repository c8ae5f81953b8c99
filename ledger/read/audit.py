"""Journal entries as auditors read them: by event, order or sharer, each with its
postings and the commission level each sharer posting pays."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from ledger.chain.journal import ledger_head
from ledger.domain.entries import sharer_accounts, split_sharer_account
from ledger.read.models import Entry, Page, Posting, page
from ledger.store import tables as t


def entries(
    conn: Connection,
    *,
    event_id: str | None = None,
    order_id: str | None = None,
    sharer_id: str | None = None,
    after: tuple[int] | None = None,
    limit: int = 100,
) -> Page[Entry]:
    """Journal entries of one event, order or sharer (the first given), by seq."""
    e, p = t.entries, t.postings
    query = select(e).order_by(e.c.seq).limit(limit)
    if event_id is not None:
        query = query.where(e.c.event_id == event_id)
    elif order_id is not None:
        query = query.where(e.c.order_id == order_id)
    elif sharer_id is not None:
        accounts = sharer_accounts(sharer_id)
        query = query.where(e.c.seq.in_(select(p.c.entry_seq).where(p.c.account.in_(accounts))))
    if after is not None:
        query = query.where(e.c.seq > after[0])
    rows = conn.execute(query).all()
    postings = _postings(conn, {r.seq: r.order_id for r in rows})
    found = [
        Entry(
            **{k: val for k, val in r._mapping.items() if k != "prev_hash"},
            postings=tuple(postings[r.seq]),
        )
        for r in rows
    ]
    return page(found, limit, lambda r: (r.seq,))


def _postings(conn: Connection, order_of: dict[int, str | None]) -> dict[int, list[Posting]]:
    """Each entry's postings (``order_of``: entry seq -> its order), each sharer posting
    with the order level it pays."""
    p, o = t.postings, t.orders
    if not order_of:
        return {}
    order_ids = {oid for oid in order_of.values() if oid is not None}
    levels = {
        oid: json.loads(lv)
        for oid, lv in conn.execute(
            select(o.c.order_id, o.c.levels).where(o.c.order_id.in_(order_ids))
        )
    }
    by_entry: dict[int, list[Posting]] = {seq: [] for seq in order_of}
    for leg in conn.execute(
        select(p.c.entry_seq, p.c.account, p.c.currency, p.c.amount)
        .where(p.c.entry_seq.in_(list(order_of)))
        .order_by(p.c.entry_seq, p.c.ordinal)
    ):
        parsed = split_sharer_account(leg.account)
        order_levels = levels.get(order_of[leg.entry_seq], [])
        level = order_levels.index(parsed[0]) + 1 if parsed and parsed[0] in order_levels else None
        by_entry[leg.entry_seq].append(Posting(leg.account, leg.currency, leg.amount, level))
    return by_entry


def head(conn: Connection) -> str:
    """The ledger head (ledger/chain/journal.py ``ledger_head``) of the committed chains."""
    h = t.chain_heads
    heads = {
        chain: (int(seq), digest)
        for chain, seq, digest in conn.execute(select(h.c.chain, h.c.chain_seq, h.c.hash))
        if seq > 0
    }
    return ledger_head(heads)
