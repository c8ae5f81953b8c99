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
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError

from ledger.domain.entries import JournalEntry
from ledger.eventlog import link_events
from ledger.journal import GENESIS, VerifyReport, link_hash, validate_entry
from ledger.store import postgres, sqlite, tables
from ledger.store.verifier import verify_snapshot

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
        head_seq, prev, _, _ = self._lock_head(conn, chain)
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

    def append_events(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert event-log rows, each linked into the hash chain named by its "chain" key
        (ledger/eventlog.py), in order. Locks those chains' head rows like append_entries."""
        by_chain: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_chain.setdefault(row["chain"], []).append(row)
        heads = tables.chain_heads
        for chain, linked in sorted(by_chain.items()):
            _check_chain(chain)
            _, _, events_seq, events_hash = self._lock_head(conn, chain)
            new_seq, new_hash = link_events(chain, (events_seq, events_hash), linked)
            conn.execute(
                update(heads)
                .where(heads.c.chain == chain)
                .values(events_seq=new_seq, events_hash=new_hash)
            )
        self.bulk_insert(conn, tables.events, rows)

    def append_batch(
        self,
        conn: Connection,
        events: Sequence[dict[str, Any]],
        entries: dict[str, list[JournalEntry]],
        recorded_at: int,
    ) -> None:
        """A batch's event-log rows and journal entries. Every chain involved is locked
        first, in name order, so two batches never wait on each other in a cycle."""
        for chain in sorted({row["chain"] for row in events} | set(entries)):
            _check_chain(chain)
            self._lock_head(conn, chain)
        self.append_events(conn, events)
        for chain, chain_entries in sorted(entries.items()):
            self.append_entries(conn, chain, chain_entries, recorded_at)

    def _lock_head(self, conn: Connection, chain: str) -> tuple[int, str, int, str]:
        """Lock the chain's head row (creating it at GENESIS on first use) and read it:
        (entries chain_seq, hash, event-log chain_seq, hash).

        INSERT … ON CONFLICT DO NOTHING then SELECT … FOR UPDATE is safe when two writers
        create the same chain at once: the second insert waits for the first, then does
        nothing, and its SELECT sees (and waits for) the committed row."""
        heads = tables.chain_heads
        query = (
            select(heads.c.chain_seq, heads.c.hash, heads.c.events_seq, heads.c.events_hash)
            .where(heads.c.chain == chain)
            .with_for_update()
        )
        row = conn.execute(query).first()
        if row is None:
            conn.execute(
                self.insert(heads)
                .values(chain=chain, chain_seq=0, hash=GENESIS, events_seq=0, events_hash=GENESIS)
                .on_conflict_do_nothing(index_elements=["chain"])
            )
            row = conn.execute(query).one()
        return int(row.chain_seq), str(row.hash), int(row.events_seq), str(row.events_hash)


def _check_chain(chain: object) -> None:
    if not isinstance(chain, str) or not chain or len(chain) > 200:
        raise StoreError(f"a chain name is a non-empty string of at most 200 chars: {chain!r}")


def _entry_row(
    seq: int,
    chain: str,
    chain_seq: int,
    entry: JournalEntry,
    recorded_at: int,
    prev: str,
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


def open_store(url: str, *, migrate: bool = True, read_only: bool = False) -> Store:
    """Connect to ``url`` (``postgresql+psycopg2://…`` or ``sqlite:///path``) and, unless
    ``migrate`` is False, bring the schema to the latest revision (safe to run from
    several processes at once). Raises StoreError for an unsupported URL.

    ``read_only`` (the read commands): never migrates, never creates a file, and every
    transaction is read-only; the database must already hold a ledger at the latest
    revision, else StoreError says what is missing."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise StoreError(f"not a database URL: {url!r} ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend not in _BACKENDS:
        raise StoreError(f"unsupported database {backend!r}: use postgresql or sqlite")
    try:
        engine = _BACKENDS[backend].make_engine(parsed, read_only=read_only)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    store = Store(engine, backend, url)
    if read_only:
        try:
            check_schema(store)
        except BaseException:
            store.dispose()
            raise
    elif migrate and current_revision(store) != head_revision():
        try:
            run_migrations(store)
        except ProgrammingError as exc:  # e.g. a least-privilege role: permission denied
            store.dispose()
            raise StoreError(
                f"the database is not at schema revision {head_revision()} and this role "
                f"cannot migrate it ({_first_line(exc)}): run `ledger migrate --db OWNER_URL`"
            ) from exc
    return store


def current_revision(store: Store) -> str | None:
    """The database's Alembic revision, None when it has no ledger schema yet."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        revision = context.get_current_revision()
        conn.rollback()
    return revision


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


def database_hint(backend: str) -> str:
    """What to check when a database cannot be used, for its backend."""
    if backend == "sqlite":
        return "is the file a ledger SQLite database, readable and writable?"
    return "is the URL right and the server up? deploy/postgres/start.sh starts the project's own"


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def check_schema(store: Store) -> None:
    """StoreError unless the database holds a ledger schema at the latest revision."""
    where = make_url(store.url).render_as_string(hide_password=True)
    try:
        with store.read() as conn:
            version = (
                conn.execute(select(text("version_num")).select_from(text("alembic_version")))
                .scalars()
                .all()
            )
    except (OperationalError, ProgrammingError, DatabaseError) as exc:
        first = _first_line(exc)
        if "alembic_version" in first:
            raise StoreError(f"no ledger in {where}: it has no ledger tables") from exc
        raise StoreError(
            f"cannot read a ledger from {where}: {first} ({database_hint(store.backend)})"
        ) from exc
    head = head_revision()
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    unknown = [v for v in version if v not in known]
    if unknown:
        raise StoreError(
            f"the ledger in {where} is at schema revision {', '.join(map(str, unknown))}, "
            f"unknown to this program (it reads {head}): was it written by a newer version?"
        )
    if version != [head]:
        found = ", ".join(map(str, version)) or "none"
        raise StoreError(
            f"the ledger in {where} is at schema revision {found}, this program reads {head}: "
            "run `ledger migrate` first"
        )


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
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
    store: Store,
    *,
    batch_size: int = 10_000,
    expect_head: str | None = None,
    replay: bool = True,
) -> VerifyReport:
    """Recompute every chain from the stored rows and report the first bad row.

    Reads one consistent snapshot, streaming rows ordered by (chain, chain_seq),
    ``batch_size`` at a time. Journal: chain_seq continuity from 1, seq order within a
    chain, each link's hash and prev_hash, balance per currency, postings' occurred_at,
    orphan postings and agreement with ``chain_heads``. Event log: the same chain checks
    (ledger/eventlog.py). Then, unless ``replay`` is False, the event log is replayed
    through the rules and what it implies is compared with the journal and the reference
    state (ledger/store/replay.py). Compares the ledger head with ``expect_head`` when
    given. Never raises for a stored value of any type: that is a reported problem."""
    if type(batch_size) is not int or batch_size < 1:
        raise StoreError(f"batch_size must be a positive int, not {batch_size!r}")
    check = None
    if replay:
        from ledger.store.replay import check_replay

        check = check_replay
    with store.read() as conn:
        return verify_snapshot(conn, batch_size=batch_size, expect_head=expect_head, replay=check)
