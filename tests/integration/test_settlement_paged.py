"""A settlement run is read and written a page of due orders at a time. On random
streams, on SQLite and PostgreSQL, a ledger built with pages of 3 orders is row for row the
ledger built with the default page (entries, hashes, postings, balances, orders, event log,
dead letters, runs), and both equal the in-memory model; a run rejected by SPEC's bound
leaves no trace; and the orders (and entries) held at once do not grow with the due count.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger.domain import state as domain_state
from ledger.domain.engine import Applied, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.events import Event
from ledger.domain.memory import InMemoryLedger
from ledger.domain.model import Order
from ledger.service import LedgerService, Received
from ledger.store import tables as t
from ledger.store.batch import BatchTransaction
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.support import reads as queries
from tests.support.streams import DAY, T0, Ev, streams
from tests.support.views import url_factory

TINY_PAGE = 3
NOW = 1_800_000_000_000  # a fixed clock: recorded_at is then equal in both ledgers


@pytest.fixture(params=["sqlite", "postgres"])
def db_url_factory(request, tmp_path_factory):
    yield from url_factory(request, tmp_path_factory, prefix="paged")


SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def pages_of(size: int) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain_state, "DUE_PAGE", size)
        yield


@contextmanager
def bound(value: int) -> Iterator[None]:
    """SPEC §3's ±2^62, lowered so that random streams reach it (runs included)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain_state, "BALANCE_BOUND", value)
        yield


def ingest(url: str, events: Sequence[Event], cuts: Sequence[int], writers: int = 1) -> Store:
    """``events`` in batches cut by ``cuts`` (cycled); with several writers, batch k goes
    through writer k mod n, each its own store (pool) and its own hash chain."""
    stores = [open_store(url) for _ in range(writers)]
    services = [LedgerService(s, clock=lambda: NOW) for s in stores]
    position, sizes = 0, itertools.cycle(cuts)
    for k in itertools.count():
        if position >= len(events):
            break
        size = next(sizes)
        chunk = events[position : position + size]
        chain = f"c{k % writers}"
        services[k % writers].ingest(
            [Received(e, f"p:{position + i}", chain) for i, e in enumerate(chunk)]
        )
        position += size
    for extra in stores[1:]:
        extra.dispose()
    return stores[0]


def ledger_rows(store: Store) -> dict[str, list[tuple]]:
    """Every row of every ledger table, sorted: equal dicts are equal ledgers."""
    with store.read() as conn:
        return {
            table.name: sorted(tuple(map(str, r)) for r in conn.execute(select(table)))
            for table in t.metadata.sorted_tables
        }


def entries_of(store: Store) -> list[tuple]:
    e, p = t.entries, t.postings
    with store.read() as conn:
        rows = conn.execute(
            select(e.c.chain, e.c.event_id, e.c.ordinal, e.c.order_id, p.c.account, p.c.amount)
            .join(p, p.c.entry_seq == e.c.seq)
            .order_by(e.c.chain, e.c.chain_seq, p.c.ordinal)
        )
        return [tuple(r) for r in rows]


def model_entries(model: InMemoryLedger) -> list[tuple]:
    return [
        ("c0", x.event_id, x.ordinal, x.order_id, p.account, p.amount)
        for x in model.entries
        for p in x.postings
    ]


def settled_orders(store: Store) -> int:
    with store.read() as conn:
        query = select(t.orders.c.order_id).where(t.orders.c.settled_by.is_not(None))
        return len(conn.execute(query).all())


def paged_and_default(
    make_url: Callable[[], str], events: Sequence[Event], cuts: Sequence[int], writers: int = 1
) -> tuple[Store, Store]:
    with pages_of(TINY_PAGE):
        paged = ingest(make_url(), events, cuts, writers)
    return paged, ingest(make_url(), events, cuts, writers)


@SETTINGS
@given(
    events=streams(max_buyers=4, max_steps=40),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    limit=st.sampled_from([2**62, 2**62, 3_000, 20_000]),
)
def test_pages_of_three_give_the_ledger_of_the_default_page_and_of_the_model(
    db_url_factory, events, cuts, limit
) -> None:
    """Runs in batches of their own and in batches with the completions that make their
    orders due (the cuts), with the bound lowered now and then so that runs (and other
    events) are rejected by it: the same rows, the same hashes, the model's entries."""
    with bound(limit):
        paged, default = paged_and_default(db_url_factory, events, cuts)
        model = InMemoryLedger(chain="c0")
        model.ingest(events)
    try:
        assert ledger_rows(paged) == ledger_rows(default)
        assert verify(paged).head == verify(default).head
        assert entries_of(paged) == model_entries(model)
        assert queries.account_balances(paged) == model.balances()
        with bound(limit):
            assert verify(paged).ok
    finally:
        paged.dispose()
        default.dispose()


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=streams(max_buyers=4, min_steps=20, max_steps=40),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=4),
)
def test_two_writers_paged_equal_two_writers_unpaged(db_url_factory, events, cuts) -> None:
    """Two services (two pools, two chains) taking turns on one database."""
    paged, default = paged_and_default(db_url_factory, events, cuts, writers=2)
    try:
        assert ledger_rows(paged) == ledger_rows(default)
        assert verify(paged).ok
    finally:
        paged.dispose()
        default.dispose()


# --- worked cases ------------------------------------------------------------------------


def platform(ev: Ev, orders: int, *, sharers: int = 4) -> list[Event]:
    """A plan, a chain of ``sharers`` and ``orders`` sales (``sales``)."""
    out: list[Event] = [ev.plan(mins=[("CNY", 1)])]
    out += [ev.enroll(f"S{n}", f"S{n - 1}" if n else None) for n in range(sharers)]
    return out + sales(ev, range(orders), sharers=sharers)


def sales(ev: Ev, numbers: range, *, sharers: int = 4) -> list[Event]:
    """Orders completed at T0 + 1 day, each attributed to one of the sharers (so a run
    settles to several accounts), each from its own merchant (far from any bound)."""
    out: list[Event] = []
    for n in numbers:
        buyer, order_id = f"B{n}", f"O{n:05d}"
        out.append(ev.click(f"C{n}", f"S{n % sharers}", buyer, T0 + 1))
        out.append(ev.order(order_id, buyer, T0 + 2, [("L1", 10_000 + n, None)], merchant=f"M{n}"))
        out.append(ev.complete(order_id, buyer, T0 + DAY))
    return out


def two_runs(ev: Ev) -> list[Event]:
    """S0 alone earns 460 per order: 6 orders, a run (available 2,760+), 6 more orders
    (pending 2,760+) and a second run, which would take available to 5,500+."""
    return [
        *platform(ev, 6, sharers=1),
        ev.run("RUN1", T0 + 9 * DAY),
        *sales(ev, range(6, 12), sharers=1),
        ev.run("RUN2", T0 + 9 * DAY, event_id="e-run2"),
    ]


ROOM = 4_000  # a bound that each run but not the two together fits


def test_a_run_in_the_batch_of_its_completions_and_a_payout_behind_it(db_url_factory) -> None:
    """One batch: orders, their completions, two runs, then a payout of what the first run
    made available (the payout reads the balance the paged run wrote)."""
    ev = Ev()
    events = [
        *platform(ev, 10),
        ev.run("RUN1", T0 + 9 * DAY),
        ev.run("RUN2", T0 + 9 * DAY, event_id="e-run2"),
        ev.request("PAY1", "S0", 500, at=T0 + 9 * DAY + 1, event_id="e-pay"),
    ]
    paged, default = paged_and_default(db_url_factory, events, [len(events)])
    model = InMemoryLedger(chain="c0")
    results = model.ingest(events)
    try:
        assert ledger_rows(paged) == ledger_rows(default)
        assert entries_of(paged) == model_entries(model)
        assert settled_orders(paged) == 10 > TINY_PAGE
        outcome = {r.incoming.event.event_id: r.outcome for r in results}
        assert isinstance(outcome["e-pay"], Applied)  # the run's money was there
        assert isinstance(outcome["e-run2"], Applied) and not outcome["e-run2"].entries
        assert verify(paged).ok
    finally:
        paged.dispose()
        default.dispose()


def test_a_run_the_bound_rejects_leaves_no_trace_however_many_pages(db_url_factory) -> None:
    """The bound is checked on the run's sums per account before its first page is
    written: the rejected run leaves its orders unsettled, its id free, no entry."""
    ev = Ev()
    events = two_runs(ev)
    with bound(ROOM):
        paged, default = paged_and_default(db_url_factory, events, [7])
    try:
        assert ledger_rows(paged) == ledger_rows(default)
        (dead,) = queries.dead_letters(paged)
        assert (dead["event_id"], dead["reason"]) == ("e-run2", "balance_out_of_range")
        assert "sharer:S0:available" in dead["message"]
        assert settled_orders(paged) == 6
        with paged.read() as conn:
            runs = conn.execute(select(t.settlement_runs.c.run_id)).scalars().all()
            e = t.entries
            run2 = conn.execute(select(e.c.seq).where(e.c.event_id == "e-run2")).all()
        assert runs == ["RUN1"] and run2 == []
        with bound(ROOM):  # the replay of the log rejects it too
            assert verify(paged).ok
        # the id is free: with room again, the same run applies
        service = LedgerService(paged, clock=lambda: NOW)
        service.ingest([Received(ev.run("RUN2", T0 + 9 * DAY), "p:again", "c0")])
        assert settled_orders(paged) == 12
    finally:
        paged.dispose()
        default.dispose()


# --- memory: what a run holds at once ------------------------------------------------------


def _alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def held_while_writing(url: str, due: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """The most orders and journal entries alive in the process when a page of a run over
    ``due`` orders is written (every object of those types, wherever it is held)."""
    ev = Ev()
    store = open_store(url)
    service = LedgerService(store, clock=lambda: NOW)
    service.ingest([Received(e, "p", "c0") for e in platform(ev, due)])
    seen = {"orders": 0, "entries": 0, "pages": 0}
    write_page = BatchTransaction.write_page

    def counting(self, chain, entries, orders, recorded_at) -> None:  # type: ignore[no-untyped-def]
        seen["orders"] = max(seen["orders"], _alive(Order))
        seen["entries"] = max(seen["entries"], _alive(JournalEntry))
        seen["pages"] += 1
        write_page(self, chain, entries, orders, recorded_at)

    monkeypatch.setattr(BatchTransaction, "write_page", counting)
    gc.collect()
    report = service.ingest([Received(ev.run("RUN1", T0 + 9 * DAY), "p:run", "c0")])
    monkeypatch.setattr(BatchTransaction, "write_page", write_page)
    assert report.entries == due and seen["pages"] == -(-due // TINY_PAGE)
    assert settled_orders(store) == due
    store.dispose()
    return seen["orders"], seen["entries"]


def test_orders_held_at_once_are_bounded_by_the_page_not_the_due_count(
    db_url_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pages_of(TINY_PAGE):
        small = held_while_writing(db_url_factory(), 12, monkeypatch)
        large = held_while_writing(db_url_factory(), 90, monkeypatch)
    orders, entries = large
    assert large == small  # the same however many orders are due
    # a page as read and as settled, its entries: a handful, never the due count
    assert orders <= 2 * TINY_PAGE and entries <= TINY_PAGE


def test_the_run_reads_pages_in_the_order_the_rules_sort_ids(db_url_factory) -> None:
    """Keyset paging in the database's order must be the code point order ``sorted``
    gives (PostgreSQL collates the key "C"): ids that a linguistic collation would order
    differently ("a-b" < "ab" < "aB" < "Ab" by code point) settle in that order."""
    ev = Ev()
    ids = ["ab", "Ab", "a-b", "aB", "a b", "é", "e", "Z", "z", "10", "9", "中", "ａ"]
    events: list[Event] = [ev.plan(mins=[("CNY", 1)]), ev.enroll("S0")]
    for n, order_id in enumerate(ids):
        events.append(ev.click(f"C{n}", "S0", f"B{n}", T0 + 1))
        events.append(ev.order(order_id, f"B{n}", T0 + 2))
        events.append(ev.complete(order_id, f"B{n}", T0 + DAY))
    events.append(ev.run("RUN1", T0 + 9 * DAY, event_id="e-run"))
    paged, default = paged_and_default(db_url_factory, events, [5])
    try:
        with paged.read() as conn:
            e = t.entries
            settled = conn.execute(
                select(e.c.order_id).where(e.c.event_id == "e-run").order_by(e.c.ordinal)
            )
            assert settled.scalars().all() == sorted(ids)
        assert ledger_rows(paged) == ledger_rows(default)
    finally:
        paged.dispose()
        default.dispose()


def test_the_model_rejects_what_the_database_rejects() -> None:
    """The worked bound case on the in-memory model too (no loader, every order cached):
    the pages of cached orders are summed before anything changes."""
    with bound(ROOM), pages_of(TINY_PAGE):
        model = InMemoryLedger()
        results = model.ingest(two_runs(Ev()))
    assert isinstance(results[-1].outcome, Rejected)
    assert not model.state.run_seen("RUN2")
    orders = [model.state.order(f"O{n:05d}") for n in range(12)]
    assert [o.settled_by for o in orders if o is not None] == ["RUN1"] * 6 + [None] * 6
