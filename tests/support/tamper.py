"""A small real ledger to tamper with, and the ways an attacker lifts the append-only
triggers (on PostgreSQL, a role that may set ``session_replication_role = replica``: the
tests' admin, never the service role the store runs as; anyone who can write a SQLite
file: drop the triggers and put them back)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from ledger.domain.events import Event, OrderPlaced, RefundIssued, RefundLine
from ledger.service import LedgerService, Received, Undecodable
from ledger.simulate import generate
from ledger.store.store import Store
from tests.support.roles import as_admin, as_owner

SEED = 3


def build_ledger(
    store: Store, *, orders: int = 40, after_batch: Callable[[int], object] | None = None
) -> list[Received | Undecodable]:
    """Plans, enrollments, clicks, orders, completions, refunds, a settlement run and
    payouts (ledger/simulate.py), plus a refund that waits for its order, an event that is
    rejected and a line that never decoded; ingested in batches of 50 into chain "t"
    (``after_batch(n)`` is called after the n-th batch, from 1)."""
    work = generate(SEED, orders=orders, sharers=12, buyers=30)
    events = work.all()
    batch: list[Received | Undecodable] = [
        Received(e, f"file:{n}", "t") for n, e in enumerate(events, 1)
    ]
    waiting = RefundIssued(
        "ev-waits",
        events[-1].occurred_at,
        "t",
        refund_id="R-late",
        order_id="O-not-yet",
        buyer_id="b-x",
        lines=(RefundLine("L1", 5),),
    )
    rejected = RefundIssued(
        "ev-bad",
        events[-1].occurred_at,
        "t",
        refund_id="R-bad",
        order_id=_some_order(events),
        buyer_id="b-x",
        lines=(RefundLine("no-such-line", 5),),
    )
    batch += [
        Received(waiting, "file:w", "t"),
        Received(rejected, "file:r", "t"),
        Undecodable("file:u", "malformed_json", "not JSON", "{"),
    ]
    service = LedgerService(store, clock=lambda: 1_800_000_000_000)
    for n, start in enumerate(range(0, len(batch), 50), 1):
        service.ingest(batch[start : start + 50])
        if after_batch is not None:
            after_batch(n)
    return batch


def _some_order(events: list[Event]) -> str:
    return next(e.order_id for e in events if isinstance(e, OrderPlaced))


@contextmanager
def triggers_lifted(store: Store) -> Iterator[Connection]:
    """A transaction in which no append-only trigger fires (on PostgreSQL as the test
    admin, on the store's database: the service role may do none of this)."""
    if store.backend == "postgresql":
        admin = create_engine(as_admin(store.url), poolclass=NullPool)
        try:
            with admin.begin() as conn:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                yield conn
        finally:
            admin.dispose()
        return
    with store.begin() as conn:
        triggers = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
        ).all()
        assert triggers, "the migrations should have created triggers"
        for name, _sql in triggers:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
        yield conn
        for _name, sql in triggers:
            conn.exec_driver_sql(sql)


@contextmanager
def as_table_owner(store: Store) -> Iterator[Store]:
    """The store's database as the owner of its tables, who holds every privilege on them:
    what only the append-only triggers stop (the service role is stopped before, by its
    privileges). On SQLite the store itself."""
    if store.backend != "postgresql":
        yield store
        return
    from ledger.store.opening import open_store

    owner = open_store(as_owner(store.url), migrate=False)
    try:
        yield owner
    finally:
        owner.dispose()
