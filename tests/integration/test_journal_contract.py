"""Contract of the journal store, run against every backend through the ``db_url`` fixture.

Tampering is done the way a database superuser could: with the append-only triggers out
of the way (PostgreSQL: ``session_replication_role = replica``; SQLite: triggers dropped
and recreated in the same transaction).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import BigInteger, Connection, Integer, Table, func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ledger.chain.journal import GENESIS, ledger_head, link_hash
from ledger.domain.entries import JournalEntry, Posting, UnbalancedEntry
from ledger.store import tables
from ledger.store.errors import StoreError
from ledger.store.opening import alembic_config, include_object, open_store
from ledger.store.store import Store
from ledger.store.verify import verify as verify_ledger
from tests.support.tamper import as_table_owner
from tests.support.tamper import triggers_lifted as tampering


def verify(store: Store, **options: object):  # type: ignore[no-untyped-def]
    """The chain checks alone: these tests write entries without the events behind them,
    which the replay check (tests/integration/test_tampering.py) would call forged."""
    return verify_ledger(store, replay=False, **options)  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.dispose()


def _entry(event_id: str, amount: int, ordinal: int = 0, at: int = 1_000) -> JournalEntry:
    return JournalEntry(
        event_id=event_id,
        ordinal=ordinal,
        kind="accrual",
        rule="test/v1",
        occurred_at=at,
        postings=(
            Posting("merchant:M:charges", "CNY", -amount),
            Posting("sharer:S:pending", "CNY", amount - amount // 10),
            Posting("platform:fees", "CNY", amount // 10),
        ),
        order_id=f"O-{event_id}",
        plan_id="P1",
    )


def _batch(prefix: str, count: int, start: int = 0) -> list[JournalEntry]:
    return [_entry(f"{prefix}{i}", 100 + i, at=1_000 + i) for i in range(start, start + count)]


def _expected_chain(chain: str, entries: list[JournalEntry]) -> tuple[int, str]:
    prev = GENESIS
    for number, entry in enumerate(entries, 1):
        prev = link_hash(prev, chain, number, entry)
    return len(entries), prev


def _seed(store: Store) -> dict[str, list[int]]:
    """Chain a: 6 entries written in two transactions around chain b's 3."""
    with store.begin() as conn:
        a = store.append_entries(conn, "a", _batch("a", 4), recorded_at=1)
    with store.begin() as conn:
        b = store.append_entries(conn, "b", _batch("b", 3), recorded_at=2)
    with store.begin() as conn:
        a += store.append_entries(conn, "a", _batch("a", 2, start=4), recorded_at=3)
    return {"a": a, "b": b}


# --- writing and verifying -------------------------------------------------------------


def test_append_two_chains_and_verify(store: Store) -> None:
    seqs = _seed(store)
    assert seqs["a"] == sorted(seqs["a"]) and len(set(seqs["a"] + seqs["b"])) == 9
    report = verify(store)
    expected = {
        "a": _expected_chain("a", _batch("a", 6)),
        "b": _expected_chain("b", _batch("b", 3)),
    }
    assert report.ok, report.problem
    assert report.entries_checked == 9 and report.problem is None
    assert report.chains == expected
    assert report.head == ledger_head(expected)
    assert verify(store, batch_size=2) == report  # batch boundaries change nothing
    assert verify(store, expect_head=report.head).ok
    with store.read() as conn:
        heads = {r.chain: (r.chain_seq, r.hash) for r in conn.execute(select(tables.chain_heads))}
        postings = conn.execute(
            select(tables.postings).where(tables.postings.c.entry_seq == seqs["b"][1])
        ).all()
    assert heads == expected
    assert [(p.ordinal, p.amount, p.occurred_at) for p in postings] == [
        (0, -101, 1_001),
        (1, 91, 1_001),
        (2, 10, 1_001),
    ]


def test_empty_ledger_verifies(store: Store) -> None:
    report = verify(store)
    assert report.ok and report.entries_checked == 0 and report.head == ledger_head({})


def test_unbalanced_entry_raises_before_anything_is_written(store: Store) -> None:
    bad = JournalEntry(
        "E9", 0, "accrual", "r", 5, (Posting("x", "CNY", 5), Posting("y", "USD", -5))
    )
    with store.begin() as conn:
        with pytest.raises(UnbalancedEntry):
            store.append_entries(conn, "c", [_entry("E1", 100), bad], recorded_at=1)
        # inside the same, still open transaction: nothing was written, not even a head row
        assert conn.execute(select(func.count()).select_from(tables.entries)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(tables.postings)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(tables.chain_heads)).scalar() == 0
    with store.begin() as conn, pytest.raises(StoreError):
        store.append_entries(conn, "", [_entry("E1", 100)], recorded_at=1)


def test_same_entries_give_the_same_head_in_another_database(store: Store, tmp_path) -> None:
    _seed(store)
    other = open_store(f"sqlite:///{tmp_path / 'other.sqlite'}")
    try:
        with other.begin() as conn:  # shift the global seqs, as other writers would
            other.allocate(conn, "entries", 5)
            other.append_entries(conn, "b", _batch("b", 3), recorded_at=99)
        with other.begin() as conn:
            other.append_entries(conn, "a", _batch("a", 6), recorded_at=98)
        mine, theirs = verify(store), verify(other)
    finally:
        other.dispose()
    assert mine.ok and theirs.ok
    assert mine.head == theirs.head and mine.chains == theirs.chains


def test_allocate(store: Store) -> None:
    with store.begin() as conn:
        first = store.allocate(conn, "events", 3)
        second = store.allocate(conn, "events", 1000)
        arrival = store.allocate(conn, "arrival", 2)
        assert store.allocate(conn, "dead_letters", 0) == []
        with pytest.raises(StoreError):
            store.allocate(conn, "nope", 1)
    assert len(first) == 3 and len(second) == 1000 and len(arrival) == 2
    assert first == sorted(first) and second == sorted(second) and first[-1] < second[0]
    assert len(set(second)) == 1000


def test_bulk_insert_round_trips_awkward_text(store: Store) -> None:
    awkward = ["tab\there", "new\nline\r\n", "back\\slash \\N", "", "quote\" '", "订单 ✓", "a,b"]
    rows = [_sample_row(tables.events, i) | {"payload": value} for i, value in enumerate(awkward)]
    rows[0]["source"] = "\\."  # the COPY end-of-data marker, as data
    with store.begin() as conn:
        store.bulk_insert(conn, tables.events, rows)
    with store.read() as conn:
        stored = conn.execute(select(tables.events).order_by(tables.events.c.seq)).mappings().all()
    assert [r["payload"] for r in stored] == awkward
    assert stored[0]["source"] == "\\."
    nullable = [c.name for c in tables.dead_letters.columns if c.nullable]
    with store.begin() as conn:
        store.bulk_insert(
            conn,
            tables.dead_letters,
            [{k: v for k, v in _sample_row(tables.dead_letters, 1).items() if k not in nullable}],
        )
        row = conn.execute(select(tables.dead_letters)).mappings().one()
    assert all(row[name] is None for name in nullable)


# --- append-only, enforced by the database ----------------------------------------------


def _sample_row(table: Table, n: int) -> dict[str, object]:
    """A row with a value for every column (ints for integer columns, text otherwise)."""
    return {
        c.name: n if isinstance(c.type, (Integer, BigInteger)) else f"{c.name}-{n}"
        for c in table.columns
    }


def _one_row_of(store: Store, name: str) -> dict[str, object]:
    table = tables.metadata.tables[name]
    if name in ("entries", "postings"):
        _seed(store)
    else:
        with store.begin() as conn:
            store.bulk_insert(conn, table, [_sample_row(table, 1)])
    with store.read() as conn:
        return dict(conn.execute(select(table).limit(1)).mappings().one())


@pytest.mark.parametrize("name", tables.JOURNAL_TABLES)
def test_journal_tables_refuse_update_delete_truncate(store: Store, name: str) -> None:
    table = tables.metadata.tables[name]
    before = _one_row_of(store, name)
    key = list(table.primary_key.columns)
    where = [c == before[c.name] for c in key]
    column = next(c for c in table.columns if c.name not in {k.name for k in key})
    new_value = 7 if isinstance(column.type, (Integer, BigInteger)) else "tampered"
    statements = [
        update(table).where(*where).values({column.name: new_value}),
        table.delete().where(*where),
        table.delete(),
    ]
    if store.backend == "postgresql":
        statements.append(text(f"TRUNCATE {name}"))
    for statement in statements:  # as the owner: the triggers hold even for it
        refused = pytest.raises(IntegrityError, match=f"{name} is append-only")
        with refused, as_table_owner(store) as owner, owner.begin() as conn:
            conn.execute(statement)
    with store.read() as conn:
        after = conn.execute(select(table).where(*where)).mappings().one()
        count = conn.execute(select(func.count()).select_from(table)).scalar()
    assert dict(after) == before and count >= 1


def test_chain_heads_only_move_forward(store: Store) -> None:
    _seed(store)
    heads = tables.chain_heads
    for statement in (
        update(heads).where(heads.c.chain == "a").values(chain_seq=0, hash=GENESIS),
        heads.delete().where(heads.c.chain == "a"),
    ):
        refused = pytest.raises(IntegrityError, match="only move forward")
        with refused, as_table_owner(store) as owner, owner.begin() as conn:
            conn.execute(statement)
    assert verify(store).ok


# --- tampering is detected --------------------------------------------------------------

Tamper = Callable[[Connection, dict[str, list[int]]], tuple[int | None, str, str]]


def _exec(conn: Connection, sql: str, **params: object) -> None:
    conn.execute(text(sql), params)


def _alter_amount(conn, s):
    _exec(
        conn,
        "UPDATE postings SET amount = amount + 1 WHERE entry_seq = :s AND ordinal = 0",
        s=s["a"][2],
    )
    return s["a"][2], "a", "hash mismatch"


def _alter_amounts_keeping_balance(conn, s):
    _exec(
        conn,
        "UPDATE postings SET amount = amount + 1 WHERE entry_seq = :s AND ordinal = 1",
        s=s["b"][1],
    )
    _exec(
        conn,
        "UPDATE postings SET amount = amount - 1 WHERE entry_seq = :s AND ordinal = 2",
        s=s["b"][1],
    )
    return s["b"][1], "b", "hash mismatch"


def _alter_kind(conn, s):
    _exec(conn, "UPDATE entries SET kind = 'reversal' WHERE seq = :s", s=s["b"][2])
    return s["b"][2], "b", "hash mismatch"


def _alter_and_rehash(conn, s):
    """Alter a row and recompute its own hash: the next row's link breaks."""
    e = tables.entries
    row = conn.execute(select(e).where(e.c.seq == s["a"][1])).mappings().one()
    forged = dataclasses.replace(_batch("a", 2)[1], kind="reversal")
    digest = link_hash(row["prev_hash"], "a", 2, forged)
    conn.execute(update(e).where(e.c.seq == s["a"][1]).values(kind="reversal", hash=digest))
    return s["a"][2], "a", "broken link"


def _delete_middle_entry(conn, s):
    _exec(conn, "DELETE FROM postings WHERE entry_seq = :s", s=s["a"][1])
    _exec(conn, "DELETE FROM entries WHERE seq = :s", s=s["a"][1])
    return s["a"][2], "a", "gap in chain a after #1: a row was removed"


def _delete_entry_keep_postings(conn, s):
    _exec(conn, "DELETE FROM entries WHERE seq = :s", s=s["b"][1])
    return s["b"][1], "", "have no entry"


def _delete_posting(conn, s):
    _exec(conn, "DELETE FROM postings WHERE entry_seq = :s AND ordinal = 1", s=s["a"][3])
    return s["a"][3], "a", "hash mismatch"


def _alter_posting_time(conn, s):
    _exec(conn, "UPDATE postings SET occurred_at = 0 WHERE entry_seq = :s", s=s["b"][0])
    return s["b"][0], "b", "posting occurred_at differs"


def _insert_forged_entry(conn, s):
    """A well-formed, correctly hashed entry appended behind the service's back."""
    head = conn.execute(text("SELECT hash FROM entries WHERE chain = 'a' AND chain_seq = 6"))
    forged = _entry("forged", 5_000)
    _write_forged(conn, 1_000, "a", 7, head.scalar_one(), forged)
    return 1_000, "a", "extra row at seq 1000"


def _insert_forged_chain(conn, s):
    _write_forged(conn, 900, "evil", 1, GENESIS, _entry("forged", 5_000))
    return 900, "evil", "beyond the chain head table"


def _swap_contents(conn, s):
    """Two rows exchange everything but their seq (postings stay with the seq)."""
    e = tables.entries
    x, y = s["a"][1], s["a"][2]
    rx, ry = (dict(conn.execute(select(e).where(e.c.seq == q)).mappings().one()) for q in (x, y))
    conn.execute(update(e).where(e.c.seq == x).values(chain_seq=-1, event_id="~swap"))
    conn.execute(update(e).where(e.c.seq == y).values({**rx, "seq": y}))
    conn.execute(update(e).where(e.c.seq == x).values({**ry, "seq": x}))
    return x, "a", "reordered"


def _swap_seqs(conn, s):
    """Two rows (with their postings) exchange seqs: the journal order is changed."""
    x, y = s["a"][3], s["a"][4]
    for table, column in (("entries", "seq"), ("postings", "entry_seq")):
        _exec(conn, f"UPDATE {table} SET {column} = -1 WHERE {column} = :x", x=x)
        _exec(conn, f"UPDATE {table} SET {column} = :x WHERE {column} = :y", x=x, y=y)
        _exec(conn, f"UPDATE {table} SET {column} = :y WHERE {column} = -1", y=y)
    return x, "a", "reordered"


def _delete_last_entry(conn, s):
    _exec(conn, "DELETE FROM postings WHERE entry_seq = :s", s=s["b"][2])
    _exec(conn, "DELETE FROM entries WHERE seq = :s", s=s["b"][2])
    return None, "b", "chain head table says b #3"


def _alter_chain_head(conn, s):
    _exec(conn, "UPDATE chain_heads SET hash = :h WHERE chain = 'a'", h="f" * 64)
    return None, "a", "chain head table says a #6/" + "f" * 64


def _write_forged(conn, seq: int, chain: str, chain_seq: int, prev: str, entry) -> None:
    digest = link_hash(prev, chain, chain_seq, entry)
    conn.execute(
        tables.entries.insert().values(
            seq=seq,
            chain=chain,
            chain_seq=chain_seq,
            event_id=entry.event_id,
            ordinal=entry.ordinal,
            kind=entry.kind,
            rule=entry.rule,
            plan_id=entry.plan_id,
            order_id=entry.order_id,
            payout_id=entry.payout_id,
            occurred_at=entry.occurred_at,
            recorded_at=5,
            prev_hash=prev,
            hash=digest,
        )
    )
    conn.execute(
        tables.postings.insert(),
        [
            {
                "entry_seq": seq,
                "ordinal": i,
                "account": p.account,
                "currency": p.currency,
                "amount": p.amount,
                "occurred_at": entry.occurred_at,
            }
            for i, p in enumerate(entry.postings)
        ],
    )


TAMPERS: dict[str, Tamper] = {
    "alter amount": _alter_amount,
    "alter amounts keeping balance": _alter_amounts_keeping_balance,
    "alter kind": _alter_kind,
    "alter and rehash one row": _alter_and_rehash,
    "delete middle entry": _delete_middle_entry,
    "delete entry keep postings": _delete_entry_keep_postings,
    "delete posting": _delete_posting,
    "alter posting time": _alter_posting_time,
    "insert forged entry": _insert_forged_entry,
    "insert forged chain": _insert_forged_chain,
    "swap row contents": _swap_contents,
    "swap seqs": _swap_seqs,
    "delete last entry": _delete_last_entry,
    "alter chain head": _alter_chain_head,
}


@pytest.mark.parametrize("name", TAMPERS)
def test_tampering_is_detected(store: Store, name: str) -> None:
    seqs = _seed(store)
    assert verify(store).ok
    with tampering(store) as conn:
        bad_seq, bad_chain, problem = TAMPERS[name](conn, seqs)
    report = verify(store, batch_size=3)
    assert not report.ok
    assert report.first_bad_seq == bad_seq, report.problem
    assert report.chain_of_bad == (bad_chain or None), report.problem
    assert problem in report.problem
    assert verify(store) == report  # the same answer whatever the batch size


def test_truncation_with_rewound_heads_needs_the_external_head(store: Store) -> None:
    """The documented limit: only an externally kept head catches a consistent rewrite."""
    seqs = _seed(store)
    anchored = verify(store).head
    with tampering(store) as conn:
        _exec(conn, "DELETE FROM postings WHERE entry_seq = :s", s=seqs["a"][5])
        _exec(conn, "DELETE FROM entries WHERE seq = :s", s=seqs["a"][5])
        _exec(
            conn,
            "UPDATE chain_heads SET chain_seq = 5, hash = :h WHERE chain = 'a'",
            h=_expected_chain("a", _batch("a", 5))[1],
        )
    assert verify(store).ok  # consistent from inside the database …
    report = verify(store, expect_head=anchored)
    assert not report.ok and report.first_bad_seq is None  # … but not against the anchor
    assert f"differs from the expected {anchored}" in report.problem


# --- concurrency -------------------------------------------------------------------------


def test_writers_of_different_chains_do_not_block_each_other(store: Store) -> None:
    if store.backend == "sqlite":
        _sqlite_writers_queue(store)
        return
    with store.begin() as holder:
        store.append_entries(holder, "x", _batch("x", 2), recorded_at=1)  # locks x's head
        with store.begin() as other:
            other.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # blocked would raise
            store.append_entries(other, "y", _batch("y", 2), recorded_at=1)
        blocked = pytest.raises(OperationalError, match="lock timeout")
        with blocked, store.begin() as same_chain:
            same_chain.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
            store.append_entries(same_chain, "x", _batch("x", 1, start=9), recorded_at=1)
        assert verify(store).chains == {"y": _expected_chain("y", _batch("y", 2))}
    report = verify(store)
    assert report.ok and set(report.chains) == {"x", "y"}


def test_first_use_of_a_chain_is_safe_under_concurrency(store: Store) -> None:
    """Two writers create the same chain at once: the second waits, then continues it."""
    first, second = _batch("z", 2), _batch("z", 2, start=2)

    def writer() -> list[int]:
        with store.begin() as conn:
            return store.append_entries(conn, "z", second, recorded_at=2)

    with ThreadPoolExecutor(max_workers=1) as pool:
        with store.begin() as conn:
            mine = store.append_entries(conn, "z", first, recorded_at=1)
            theirs = pool.submit(writer)
            _wait_until_blocked(store, theirs)
        assert theirs.result(timeout=30)[0] > mine[-1]  # raises the writer's error, if any
    report = verify(store)
    assert report.ok and report.chains == {"z": _expected_chain("z", first + second)}


def _wait_until_blocked(store: Store, future: Future) -> None:
    """Poll (with a deadline) until another session waits on a lock, or (SQLite) check for
    a bounded moment that the writer stays blocked on the write lock."""
    if store.backend == "sqlite":
        assert not wait([future], timeout=0.3).done, "the writer should wait for the lock"
        return
    deadline = time.monotonic() + 10
    with store.engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).scalar()
            probe.rollback()
            if waiting:
                return
            assert not future.done(), "the second writer finished without waiting"
    raise AssertionError("the second writer never waited on the chain head lock")


def _sqlite_writers_queue(store: Store) -> None:
    """SQLite has one writer: a second one queues on busy_timeout instead of failing."""
    done = threading.Event()

    def writer() -> None:
        with store.begin() as conn:
            store.append_entries(conn, "y", _batch("y", 2), recorded_at=1)
        done.set()

    with store.begin() as holder:
        store.append_entries(holder, "x", _batch("x", 2), recorded_at=1)
        thread = threading.Thread(target=writer)
        thread.start()
        assert not done.wait(timeout=0.3), "the second writer should queue for the lock"
    assert done.wait(timeout=30)
    thread.join(timeout=30)
    report = verify(store)
    assert report.ok and set(report.chains) == {"x", "y"}


# --- migrations --------------------------------------------------------------------------


def test_migrated_schema_matches_the_metadata(store: Store) -> None:
    with store.begin() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        assert compare_metadata(context, tables.metadata) == []
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert head is not None
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head


def test_migrations_are_idempotent_and_safe_in_parallel(empty_db_url: str) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        opened = [pool.submit(open_store, empty_db_url) for _ in range(3)]
        for future in opened:
            future.result(timeout=60).dispose()  # re-raises any migrator's error
    again = open_store(empty_db_url)
    try:
        with again.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    finally:
        again.dispose()


def test_unsupported_urls_are_refused() -> None:
    for url in ("mysql://u@h/db", "not a url", "postgresql+psycopg://u@h/db"):
        with pytest.raises(StoreError):
            open_store(url, migrate=False)
