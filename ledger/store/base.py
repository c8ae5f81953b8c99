"""The store: one database (PostgreSQL or SQLite) holding the journal and reference state.

``open_store(url)`` builds the engine, runs the Alembic migrations and returns a
:class:`Store`. Everything a writer does happens on a Connection from ``store.begin()``,
inside one transaction that the caller owns: the service writes journal entries, events,
reference state and Kafka offsets together, so they commit or vanish together.

The backend-specific parts live in ``postgres.py`` and ``sqlite.py`` (same function names:
``make_engine``, ``allocate``, ``bulk_insert``, ``insert``, ``lock_for_migration``,
``balance_shard``, ``add_to_balances``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, exists, select, tuple_, update
from sqlalchemy.engine import make_url

from ledger.domain.entries import JournalEntry
from ledger.journal import (
    GENESIS,
    ChainChecker,
    EntryRow,
    VerifyReport,
    entry_from_row,
    link_hash,
    validate_entry,
)
from ledger.store import postgres, sqlite, tables

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
COUNTERS = ("entries", "events", "dead_letters", "arrival")
_BACKENDS: dict[str, ModuleType] = {"postgresql": postgres, "sqlite": sqlite}
_READ_OPTIONS: dict[str, dict[str, Any]] = {
    # one snapshot for the whole read, so verify never sees half of a concurrent append
    "postgresql": {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True},
    "sqlite": {sqlite.READ_ONLY_OPTION: True},
}


class StoreError(ValueError):
    """A store was asked for something it cannot do; the message says what."""


class Store:
    """A database with the ledger schema. Holds no connection itself (pool in ``engine``)."""

    def __init__(self, engine: Engine, backend: str, url: str) -> None:
        self.engine = engine
        self.backend = backend  # "postgresql" | "sqlite"
        self.url = url
        self._impl = _BACKENDS[backend]

    def __repr__(self) -> str:
        return f"Store({self.backend}, {self.engine.url!r})"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one write transaction: commit on success, rollback on error.

        On SQLite the transaction starts with BEGIN IMMEDIATE (it holds the write lock)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection inside one read-only snapshot transaction (never takes write locks)."""
        with self.engine.connect() as conn:
            conn.execution_options(**_READ_OPTIONS[self.backend])
            with conn.begin():
                yield conn

    def insert(self, table: Table) -> Any:
        """The backend's INSERT construct for ``table``, with ``on_conflict_do_nothing`` /
        ``on_conflict_do_update`` (PostgreSQL and SQLite dialects share those names)."""
        return self._impl.insert(table)

    def dispose(self) -> None:
        self.engine.dispose()

    def allocate(self, conn: Connection, name: str, n: int) -> list[int]:
        """``n`` fresh ids of counter ``name``, increasing; never reused, may leave gaps.

        PostgreSQL: sequences, so concurrent writers never wait on each other here.
        SQLite: a counter row, under the write lock the transaction already holds."""
        if name not in COUNTERS:
            raise StoreError(f"unknown counter {name!r}; known: {', '.join(COUNTERS)}")
        if type(n) is not int or n < 0:
            raise StoreError(f"cannot allocate {n!r} ids")
        if n == 0:
            return []
        return self._impl.allocate(conn, name, n)

    def bulk_insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (dicts by column name; missing keys are NULL). PostgreSQL: COPY."""
        if rows:
            self._impl.bulk_insert(conn, table, rows)

    def append_entries(
        self, conn: Connection, chain: str, entries: Sequence[JournalEntry], recorded_at: int
    ) -> list[int]:
        """Append ``entries`` in order to hash chain ``chain``; return their global seqs.

        Raises UnbalancedEntry (or TypeError for a mistyped field) before writing
        anything; IntegrityError if an (event_id, ordinal) is already journaled (the
        caller dedupes first, and must roll back on any error). Locks the chain's head row
        until the caller's transaction ends, so writers of one chain queue and writers of
        other chains proceed."""
        _check_chain(chain)
        entries = list(entries)
        if type(recorded_at) is not int:
            raise TypeError(f"recorded_at must be an int, not {recorded_at!r}")
        for entry in entries:
            validate_entry(entry)
            entry.check_balanced()
        if not entries:
            return []
        head_seq, prev = self._lock_head(conn, chain)
        seqs = self.allocate(conn, "entries", len(entries))
        entry_rows: list[dict[str, Any]] = []
        posting_rows: list[dict[str, Any]] = []
        for offset, (seq, entry) in enumerate(zip(seqs, entries, strict=True)):
            chain_seq = head_seq + 1 + offset
            digest = link_hash(prev, chain, chain_seq, entry)
            entry_rows.append(_entry_row(seq, chain, chain_seq, entry, recorded_at, prev, digest))
            posting_rows.extend(
                {
                    "entry_seq": seq,
                    "ordinal": ordinal,
                    "account": p.account,
                    "currency": p.currency,
                    "amount": p.amount,
                    "occurred_at": entry.occurred_at,
                }
                for ordinal, p in enumerate(entry.postings)
            )
            prev = digest
        self.bulk_insert(conn, tables.entries, entry_rows)
        self.bulk_insert(conn, tables.postings, posting_rows)
        self._add_to_balances(conn, chain, posting_rows)
        heads = tables.chain_heads
        conn.execute(
            update(heads)
            .where(heads.c.chain == chain)
            .values(chain_seq=head_seq + len(entries), hash=prev)
        )
        return seqs

    def _add_to_balances(
        self, conn: Connection, chain: str, posting_rows: list[dict[str, Any]]
    ) -> None:
        """Add the postings to ``account_balances`` (see tables.py), in the same
        transaction. The shard's rows are only written under this chain's head lock."""
        sums: dict[tuple[str, str], int] = defaultdict(int)
        for row in posting_rows:
            sums[(row["account"], row["currency"])] += row["amount"]
        shard = self._impl.balance_shard(chain)
        rows = [
            (account, currency, shard, amount)
            for (account, currency), amount in sorted(sums.items())
            if amount
        ]
        if rows:
            self._impl.add_to_balances(conn, rows)

    def _lock_head(self, conn: Connection, chain: str) -> tuple[int, str]:
        """Lock the chain's head row (creating it at GENESIS on first use) and read it.

        INSERT … ON CONFLICT DO NOTHING then SELECT … FOR UPDATE is safe when two writers
        create the same chain at once: the second insert waits for the first, then does
        nothing, and its SELECT sees (and waits for) the committed row."""
        heads = tables.chain_heads
        query = (
            select(heads.c.chain_seq, heads.c.hash).where(heads.c.chain == chain).with_for_update()
        )
        row = conn.execute(query).first()
        if row is None:
            conn.execute(
                self.insert(heads)
                .values(chain=chain, chain_seq=0, hash=GENESIS)
                .on_conflict_do_nothing(index_elements=["chain"])
            )
            row = conn.execute(query).one()
        return int(row.chain_seq), str(row.hash)


def _check_chain(chain: object) -> None:
    if not isinstance(chain, str) or not chain or len(chain) > 200:
        raise StoreError(f"a chain name is a non-empty string of at most 200 chars: {chain!r}")


def _entry_row(
    seq: int, chain: str, chain_seq: int, entry: JournalEntry, recorded_at: int, prev: str,
    digest: str,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "chain": chain,
        "chain_seq": chain_seq,
        "event_id": entry.event_id,
        "ordinal": entry.ordinal,
        "kind": entry.kind,
        "rule": entry.rule,
        "plan_id": entry.plan_id,
        "order_id": entry.order_id,
        "payout_id": entry.payout_id,
        "occurred_at": entry.occurred_at,
        "recorded_at": recorded_at,
        "prev_hash": prev,
        "hash": digest,
    }


# --- opening and migrating --------------------------------------------------------------


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Connect to ``url`` (``postgresql+psycopg2://…`` or ``sqlite:///path``) and, unless
    ``migrate`` is False, bring the schema to the latest revision (safe to run from
    several processes at once). Raises StoreError for an unsupported URL."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise StoreError(f"not a database URL: {url!r} ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend not in _BACKENDS:
        raise StoreError(f"unsupported database {backend!r}: use postgresql or sqlite")
    try:
        engine = _BACKENDS[backend].make_engine(parsed)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    store = Store(engine, backend, url)
    if migrate:
        run_migrations(store)
    return store


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic filter: tables kept outside tables.metadata on purpose are not schema drift."""
    return not (type_ == "table" and name == sqlite.COUNTERS_TABLE)


def run_migrations(store: Store, revision: str = "head") -> None:
    """Upgrade to ``revision`` in one transaction, serialised against other migrators."""
    config = alembic_config()
    with store.begin() as conn:
        store._impl.lock_for_migration(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


# --- verify -----------------------------------------------------------------------------


def verify(
    store: Store, *, batch_size: int = 10_000, expect_head: str | None = None
) -> VerifyReport:
    """Recompute every chain from the stored rows and report the first bad row.

    Reads one consistent snapshot, streaming entries ordered by (chain, chain_seq) with
    their postings, ``batch_size`` entries at a time. Checks chain_seq continuity from 1,
    seq order within a chain, each link's hash and prev_hash, balance per currency,
    postings' occurred_at, orphan postings and agreement with ``chain_heads``; compares the
    ledger head with ``expect_head`` when given (see ledger.journal for what cannot be
    detected without it)."""
    if type(batch_size) is not int or batch_size < 1:
        raise StoreError(f"batch_size must be a positive int, not {batch_size!r}")
    with store.read() as conn:
        heads = tables.chain_heads
        stored = {r.chain: (int(r.chain_seq), r.hash) for r in conn.execute(select(heads))}
        checker = ChainChecker(stored_heads=stored)
        for row in _stream_rows(conn, batch_size):
            checker.feed(row)
        orphan = _first_orphan_posting(conn)
        if orphan is not None:
            checker.note_orphan_posting(orphan)
    return checker.report(expect_head)


def _stream_rows(conn: Connection, batch_size: int) -> Iterator[EntryRow]:
    e, p = tables.entries, tables.postings
    # seq breaks ties so that even duplicate (chain, chain_seq) rows (possible only if a
    # superuser dropped the unique constraint) are all read, none skipped at a boundary.
    key = tuple_(e.c.chain, e.c.chain_seq, e.c.seq)
    after: tuple[str, int, int] | None = None
    while True:
        query = select(e).order_by(e.c.chain, e.c.chain_seq, e.c.seq).limit(batch_size)
        if after is not None:
            query = query.where(key > tuple_(*after))
        rows = conn.execute(query).mappings().all()
        if not rows:
            return
        last = (rows[-1]["chain"], rows[-1]["chain_seq"], rows[-1]["seq"])
        posting_query = (
            select(p.c.entry_seq, p.c.account, p.c.currency, p.c.amount, p.c.occurred_at)
            .join(e, e.c.seq == p.c.entry_seq)
            .where(key <= tuple_(*last))
            .order_by(p.c.entry_seq, p.c.ordinal)
        )
        if after is not None:
            posting_query = posting_query.where(key > tuple_(*after))
        by_entry: dict[int, list[Any]] = {}
        for posting in conn.execute(posting_query).mappings():
            by_entry.setdefault(posting["entry_seq"], []).append(posting)
        for row in rows:
            postings = by_entry.get(row["seq"], [])
            yield EntryRow(
                seq=row["seq"],
                chain=row["chain"],
                chain_seq=row["chain_seq"],
                prev_hash=row["prev_hash"],
                hash=row["hash"],
                entry=entry_from_row(row, postings),
                posting_times=tuple(posting["occurred_at"] for posting in postings),
            )
        after = last


def _first_orphan_posting(conn: Connection) -> int | None:
    e, p = tables.entries, tables.postings
    query = select(p.c.entry_seq).where(~exists().where(e.c.seq == p.c.entry_seq))
    return conn.execute(query.order_by(p.c.entry_seq).limit(1)).scalar()
