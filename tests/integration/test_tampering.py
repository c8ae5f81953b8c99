"""Tampering with a real ledger, on both backends.

Item 3: the database refuses to replace an existing row of an append-only table (SQLite's
INSERT OR REPLACE / REPLACE INTO deletes the old row without firing DELETE triggers;
PostgreSQL's INSERT … ON CONFLICT DO UPDATE fires the UPDATE triggers).
Item 5: whatever the triggers let through (or a superuser does with them lifted) and the
hash chains cannot see, verify's replay of the event log finds: one test per kind.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Connection, Integer, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ledger.chain.eventlog import event_link_hash
from ledger.chain.journal import link_hash
from ledger.domain.events import RefundIssued, RefundLine
from ledger.payload import dump_event
from ledger.service import LedgerService, Received
from ledger.store import tables
from ledger.store.opening import open_store
from ledger.store.refdata import order_from_row
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.support.tamper import as_table_owner, build_ledger, triggers_lifted


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    build_ledger(opened)
    assert verify(opened).ok
    yield opened
    opened.dispose()


# --- item 3: no row of an append-only table can be replaced ---------------------------------

REPLACEABLE = (*tables.APPEND_ONLY_TABLES, "chain_heads")


def _first_row(store: Store, name: str) -> dict[str, object]:
    table = tables.metadata.tables[name]
    if name == "checkpoints":
        with store.begin() as conn:
            conn.execute(
                table.insert().values(signature="ab" * 32, created_at=1, key_id="k", body="{}")
            )
    with store.read() as conn:
        key = list(table.primary_key.columns)
        return dict(conn.execute(select(table).order_by(*key).limit(1)).mappings().one())


def _variants(name: str, row: dict[str, object]) -> list[dict[str, object]]:
    """The row with one non-key value changed; and, when the table has unique keys beside
    its primary key, also with a fresh primary key (so only a secondary key conflicts)."""
    table = tables.metadata.tables[name]
    key = {c.name for c in table.primary_key.columns}
    if name == "chain_heads":
        return [{**row, "chain_seq": 0, "hash": "0" * 64}]  # backwards: refused on both
    column = next(c for c in table.columns if c.name not in key and c.name != "chain")
    changed = 7 if isinstance(column.type, Integer) else "tampered"
    variants = [{**row, column.name: changed}]
    if name in SECONDARY_KEYS:  # a fresh primary key: only the other unique keys conflict
        pk = next(iter(key))
        fresh = 10**12 if isinstance(table.columns[pk].type, Integer) else "fresh-key"
        variants.append({**row, pk: fresh})
    return variants


SECONDARY_KEYS = ("entries", "events", "plans")  # tables with unique keys beside the primary


@pytest.mark.parametrize("name", REPLACEABLE)
def test_an_existing_row_cannot_be_replaced(store: Store, name: str) -> None:
    table = tables.metadata.tables[name]
    before = _first_row(store, name)
    with store.read() as conn:
        count = conn.execute(select(func.count()).select_from(table)).scalar()
    for altered in _variants(name, before):
        if store.backend == "sqlite":
            columns = ", ".join(altered)
            values = ", ".join(f":{c}" for c in altered)
            statements = [
                sqlite_insert(table).prefix_with("OR REPLACE").values(altered),
                text(f"REPLACE INTO {name} ({columns}) VALUES ({values})").bindparams(**altered),
            ]
        else:
            key = [c.name for c in table.primary_key.columns]
            stmt = pg_insert(table).values(altered)
            statements = [
                stmt.on_conflict_do_update(
                    index_elements=key,
                    set_={c: stmt.excluded[c] for c in altered if c not in key},
                )
            ]
        for statement in statements:
            # PostgreSQL refuses a conflict on a key other than the one named as a plain
            # duplicate key; the owner tries (the service role lacks UPDATE on most)
            refused = pytest.raises(
                IntegrityError, match="append-only|only move forward|duplicate key"
            )
            with refused, as_table_owner(store) as owner, owner.begin() as conn:
                conn.execute(statement)
    with store.read() as conn:
        key = list(table.primary_key.columns)
        after = dict(conn.execute(select(table).order_by(*key).limit(1)).mappings().one())
        assert conn.execute(select(func.count()).select_from(table)).scalar() == count
    assert after == before
    assert verify(store).ok


def test_the_issues_rewrite_is_refused_and_found(store: Store) -> None:
    """The issue's example: a sharer's posting moved to another sharer by replacing the
    row. Refused by the database; done with the triggers lifted, and the chain re-hashed
    from there to the head, the chains agree again, but the replay does not."""
    p = tables.postings
    with store.read() as conn:
        row = dict(
            conn.execute(
                select(p)
                .where(p.c.account.like("sharer:%:pending"), p.c.amount > 0)
                .order_by(p.c.entry_seq.desc())
                .limit(1)
            )
            .mappings()
            .one()
        )
    moved = {**row, "account": "sharer:thief:pending"}
    if store.backend == "sqlite":
        with pytest.raises(IntegrityError, match="append-only"), store.begin() as conn:
            conn.execute(sqlite_insert(p).prefix_with("OR REPLACE").values(moved))
    with triggers_lifted(store) as conn:
        conn.execute(
            update(p)
            .where(p.c.entry_seq == row["entry_seq"], p.c.ordinal == row["ordinal"])
            .values(account=moved["account"])
        )
        bad_seq = _rehash_journal_from(conn, row["entry_seq"])
    assert verify(store, replay=False).ok  # the chains alone cannot tell
    report = verify(store)
    assert not report.ok and report.table == "entries" and report.first_bad_seq == bad_seq
    assert "differs from what the rules give" in report.problem


# --- item 5: what the chains cannot see, the replay finds -----------------------------------


def _rehash_journal_from(conn: Connection, seq: int) -> int:
    """Recompute the links of seq's chain from seq to the end, and its head: a consistent
    rewrite. Returns seq."""
    from ledger.chain.journal import entry_from_row

    e, p, h = tables.entries, tables.postings, tables.chain_heads
    chain, start = conn.execute(select(e.c.chain, e.c.chain_seq).where(e.c.seq == seq)).one()
    prev = (
        conn.execute(
            select(e.c.hash).where(e.c.chain == chain, e.c.chain_seq == start - 1)
        ).scalar()
        or "0" * 64
    )
    rows = (
        conn.execute(
            select(e).where(e.c.chain == chain, e.c.chain_seq >= start).order_by(e.c.chain_seq)
        )
        .mappings()
        .all()
    )
    for row in rows:
        postings = (
            conn.execute(select(p).where(p.c.entry_seq == row["seq"]).order_by(p.c.ordinal))
            .mappings()
            .all()
        )
        digest = link_hash(prev, chain, row["chain_seq"], entry_from_row(row, postings))
        conn.execute(update(e).where(e.c.seq == row["seq"]).values(prev_hash=prev, hash=digest))
        prev = digest
    conn.execute(update(h).where(h.c.chain == chain).values(hash=prev))
    return seq


def _append_event_row(conn: Connection, event, outcome: str = "applied") -> None:  # type: ignore[no-untyped-def]
    """Append an event-log row the way the service would: linked, head advanced."""
    h = tables.chain_heads
    seq, prev = conn.execute(select(h.c.events_seq, h.c.events_hash).where(h.c.chain == "t")).one()
    row = {
        "event_id": event.event_id,
        "type": event.TYPE,
        "occurred_at": event.occurred_at,
        "source": "file:forged",
        "outcome": outcome,
        "payload": dump_event(event),
    }
    digest = event_link_hash(prev, "t", seq + 1, row)
    conn.execute(
        tables.events.insert().values(
            **row,
            seq=10**9,
            recorded_at=1,
            chain="t",
            chain_seq=seq + 1,
            prev_hash=prev,
            hash=digest,
        )
    )
    conn.execute(update(h).where(h.c.chain == "t").values(events_seq=seq + 1, events_hash=digest))


def _future_refund(store: Store) -> RefundIssued:
    with store.read() as conn:
        row = (
            conn.execute(
                select(tables.orders)
                .where(tables.orders.c.levels != "[]")
                .order_by(tables.orders.c.order_id)
                .limit(1)
            )
            .mappings()
            .one()
        )
    order = order_from_row(row)
    line = max(order.lines.values(), key=lambda x: x.remaining * x.rate_bps)  # moves money
    return RefundIssued(
        "ev-future",
        order.occurred_at + 1,
        "shop",
        refund_id="R-future",
        order_id=order.order_id,
        buyer_id=order.buyer_id,
        lines=(RefundLine(line.line_id, line.remaining),),
    )


def test_a_logged_event_that_suppresses_the_real_one_is_found(store: Store) -> None:
    """The issue's example: an events row inserted ahead of a real event makes the real
    one a duplicate. Linked into the chain correctly, the chains agree; the replay does
    not (the logged refund implies entries the journal lacks)."""
    refund = _future_refund(store)
    with store.begin() as conn:  # INSERT is allowed: the triggers refuse changes only
        _append_event_row(conn, refund)
    report = LedgerService(store).ingest([Received(refund, "shop:1", "t")])
    assert report.duplicates == 1 and report.entries == 0  # suppressed …
    assert verify(store, replay=False).ok
    found = verify(store)  # … and found
    assert not found.ok and found.table == "entries", found.problem
    assert "ev-future" in found.problem


def test_a_naively_inserted_event_row_breaks_the_event_chain(store: Store) -> None:
    refund = _future_refund(store)
    with store.begin() as conn:
        conn.execute(
            tables.events.insert().values(
                seq=10**9,
                event_id=refund.event_id,
                type=refund.TYPE,
                occurred_at=refund.occurred_at,
                recorded_at=1,
                source="x",
                outcome="applied",
                payload=dump_event(refund),
                chain="t",
                chain_seq=10**6,
                prev_hash="0" * 64,
                hash="0" * 64,
            )
        )
    report = verify(store, replay=False)
    assert not report.ok and report.table == "events" and report.first_bad_seq == 10**9
    assert "event log: " in report.problem


def _set_json(column: str, change: Callable[[object], object]) -> Callable[[Connection], str]:
    def tamper(conn: Connection) -> str:
        o = tables.orders
        order_id, value = conn.execute(
            select(o.c.order_id, o.c[column])
            .where(o.c.levels != "[]", o.c.settled_by.isnot(None))
            .order_by(o.c.order_id)
            .limit(1)
        ).one()
        conn.execute(
            update(o)
            .where(o.c.order_id == order_id)
            .values({column: json.dumps(change(json.loads(value)), separators=(",", ":"))})
        )
        return order_id

    return tamper


def _unsettle(conn: Connection) -> str:
    o = tables.orders
    order_id = conn.execute(
        select(o.c.order_id).where(o.c.settled_by.isnot(None)).order_by(o.c.order_id).limit(1)
    ).scalar_one()
    conn.execute(update(o).where(o.c.order_id == order_id).values(settled_by=None))
    return order_id


def _forge_click(conn: Connection) -> str:
    c = tables.clicks
    click = dict(conn.execute(select(c).order_by(c.c.arrival.desc()).limit(1)).mappings().one())
    conn.execute(
        c.insert().values(
            {**click, "click_id": "forged", "sharer_id": "thief", "arrival": click["arrival"] + 1}
        )
    )
    return "forged"


def _forge_refund(conn: Connection) -> str:
    order_id = conn.execute(select(tables.orders.c.order_id).limit(1)).scalar_one()
    conn.execute(tables.refunds.insert().values(refund_id="R-forged", order_id=order_id))
    return "R-forged"


def _forge_run(conn: Connection) -> str:
    conn.execute(tables.settlement_runs.insert().values(run_id="run-forged", as_of=0))
    return "run-forged"


def _change_upline(conn: Connection) -> str:
    s = tables.sharers
    sharer = conn.execute(
        select(s.c.sharer_id).where(s.c.upline_id.isnot(None)).order_by(s.c.sharer_id).limit(1)
    ).scalar_one()
    conn.execute(update(s).where(s.c.sharer_id == sharer).values(upline_id="thief"))
    return sharer


def _forge_sharer(conn: Connection) -> str:
    conn.execute(tables.sharers.insert().values(sharer_id="thief", upline_id=None, enrolled_at=0))
    return "thief"


def _payout_failed(conn: Connection) -> str:
    p = tables.payouts
    payout = conn.execute(
        select(p.c.payout_id).where(p.c.state == "paid").order_by(p.c.payout_id).limit(1)
    ).scalar_one()
    conn.execute(update(p).where(p.c.payout_id == payout).values(state="inflight"))
    return payout


def _drop_parked(conn: Connection) -> str:
    conn.execute(tables.parked.delete().where(tables.parked.c.event_id == "ev-waits"))
    return "ev-waits"


def _plan_fee(conn: Connection) -> str:
    p = tables.plans
    plan_id, body = conn.execute(select(p.c.plan_id, p.c.body).order_by(p.c.plan_id).limit(1)).one()
    conn.execute(
        update(p)
        .where(p.c.plan_id == plan_id)
        .values(body=json.dumps({**json.loads(body), "platform_fee_bps": 9000}))
    )
    return plan_id


def _drop_dead_letter(conn: Connection) -> str:
    conn.execute(tables.dead_letters.delete().where(tables.dead_letters.c.event_id == "ev-bad"))
    return "ev-bad"


def _alter_logged_event(conn: Connection) -> str:
    """Change a logged order's amount and re-link the event chain from there: the event
    log is consistent again, the journal disagrees with it."""
    ev, h = tables.events, tables.chain_heads
    rows = conn.execute(select(ev).where(ev.c.chain == "t").order_by(ev.c.chain_seq)).mappings()
    rows = [dict(r) for r in rows]
    target = next(r for r in rows if r["type"] == "order_placed")
    payload = json.loads(target["payload"])
    payload["lines"][0]["amount"] += 10**6  # enough to change its commission, if it earns
    target["payload"] = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    prev = "0" * 64
    for row in rows:
        digest = event_link_hash(prev, "t", row["chain_seq"], row)
        if row["chain_seq"] >= target["chain_seq"]:
            conn.execute(
                update(ev)
                .where(ev.c.seq == row["seq"])
                .values(payload=row["payload"], prev_hash=prev, hash=digest)
            )
        prev = digest
    conn.execute(update(h).where(h.c.chain == "t").values(events_hash=prev))
    return target["event_id"]


def _forge_entry(conn: Connection) -> str:
    """A well-formed, correctly linked entry appended behind the service's back."""
    from ledger.domain.entries import JournalEntry, Posting

    e, p, h = tables.entries, tables.postings, tables.chain_heads
    seq, prev = conn.execute(select(h.c.chain_seq, h.c.hash).where(h.c.chain == "t")).one()
    entry = JournalEntry(
        "ev-forged",
        0,
        "accrual",
        "accrual/v1",
        1,
        (Posting("merchant:m:charges", "CNY", -500), Posting("sharer:thief:pending", "CNY", 500)),
    )
    digest = link_hash(prev, "t", seq + 1, entry)
    conn.execute(
        e.insert().values(
            seq=10**9,
            chain="t",
            chain_seq=seq + 1,
            event_id="ev-forged",
            ordinal=0,
            kind="accrual",
            rule="accrual/v1",
            occurred_at=1,
            recorded_at=1,
            prev_hash=prev,
            hash=digest,
        )
    )
    conn.execute(
        p.insert(),
        [
            {
                "entry_seq": 10**9,
                "ordinal": i,
                "account": x.account,
                "currency": x.currency,
                "amount": x.amount,
                "occurred_at": 1,
            }
            for i, x in enumerate(entry.postings)
        ],
    )
    conn.execute(update(h).where(h.c.chain == "t").values(chain_seq=seq + 1, hash=digest))
    return "ev-forged"


@dataclasses.dataclass(frozen=True)
class Kind:
    tamper: Callable[[Connection], str]
    table: str  # or several, "|"-separated
    needs_lifted_triggers: bool = False


KINDS = {
    "order levels redirected": Kind(_set_json("levels", lambda v: ["thief", *v[1:]]), "orders"),
    "order remaining amounts": Kind(
        _set_json("lines", lambda v: [[*v[0][:3], v[0][3] + 1], *v[1:]]), "orders"
    ),
    "order posted commission": Kind(
        _set_json("posted", lambda v: {**v, "fee": v["fee"] + 1}), "orders"
    ),  # type: ignore[dict-item]
    "order unsettled": Kind(_unsettle, "orders"),
    "click forged": Kind(_forge_click, "clicks"),
    "refund forged": Kind(_forge_refund, "refunds"),
    "settlement run forged": Kind(_forge_run, "settlement_runs"),
    "upline changed": Kind(_change_upline, "sharers", needs_lifted_triggers=True),
    "sharer forged": Kind(_forge_sharer, "sharers"),
    "payout state": Kind(_payout_failed, "payouts"),
    "parked event removed": Kind(_drop_parked, "parked"),
    "plan fee changed": Kind(_plan_fee, "plans", needs_lifted_triggers=True),
    "dead letter removed": Kind(_drop_dead_letter, "dead_letters", needs_lifted_triggers=True),
    "logged event altered and re-linked": Kind(
        _alter_logged_event, "entries|orders", needs_lifted_triggers=True
    ),
    "entry forged and linked": Kind(_forge_entry, "entries"),
}


def test_an_altered_order_is_reported_by_the_column_that_differs(store: Store) -> None:
    with store.begin() as conn:
        key = _set_json("levels", lambda v: ["thief", *v[1:]])(conn)
    report = verify(store)
    assert report.table == "orders" and key in report.problem
    assert "levels is " in report.problem and "thief" in report.problem, report.problem


@pytest.mark.parametrize("name", KINDS)
def test_tampering_the_chains_miss_is_found_by_the_replay(store: Store, name: str) -> None:
    kind = KINDS[name]
    if kind.needs_lifted_triggers:
        with triggers_lifted(store) as conn:
            key = kind.tamper(conn)
    else:
        with store.begin() as conn:
            key = kind.tamper(conn)
    assert verify(store, replay=False).ok, "the hash chains alone should not see this"
    report = verify(store)
    assert not report.ok
    assert report.table in kind.table.split("|"), report.problem
    assert key in report.problem
