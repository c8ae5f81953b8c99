"""The store: one database (PostgreSQL or SQLite) holding the journal and reference state.

``open_store(url)`` (ledger/store/opening.py) returns a :class:`Store`. Everything a
writer does happens on a Connection from ``store.begin()``, inside one transaction that
the caller owns: a batch's journal entries, events, reference state and Kafka offsets are
written together (ledger/store/batch.py), so they commit or vanish together.

What differs between PostgreSQL and SQLite is behind ``store.specifics``, a ``Backend``
(ledger/store/backend.py); the journal's hash chains are appended here, alike for both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, update

from ledger.chain.eventlog import link_events
from ledger.chain.journal import GENESIS, link_hash_checked, validate_entry
from ledger.domain.entries import JournalEntry
from ledger.store import tables
from ledger.store.backend import Backend, UpsertInsert
from ledger.store.errors import StoreError

COUNTERS = ("entries", "events", "dead_letters", "arrival")
ROWS_PER_COPY = 20_000  # entries per COPY when a batch brings more (a settlement run)


class Store:
    """A database with the ledger schema. Holds no connection itself (pool in ``engine``)."""

    def __init__(self, engine: Engine, specifics: Backend, url: str) -> None:
        self.engine = engine
        self.specifics = specifics
        self.backend = specifics.name  # "postgresql" | "sqlite"
        self.url = url

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
            conn.execution_options(**self.specifics.read_options)
            with conn.begin():
                yield conn

    def insert(self, table: Table) -> UpsertInsert:
        """The backend's INSERT construct for ``table``, with ``on_conflict_do_nothing`` /
        ``on_conflict_do_update`` (PostgreSQL and SQLite dialects share those names)."""
        return self.specifics.insert(table)

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
        return self.specifics.allocate(conn, name, n)

    def bulk_insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (dicts by column name; missing keys are NULL). PostgreSQL: COPY."""
        if rows:
            self.specifics.bulk_insert(conn, table, rows)

    def append_entries(
        self, conn: Connection, chain: str, entries: Sequence[JournalEntry], recorded_at: int
    ) -> list[int]:
        """Append ``entries`` in order to hash chain ``chain``; return their global seqs.

        Raises UnbalancedEntry (or TypeError for a mistyped field) before writing
        anything; IntegrityError if an (event_id, ordinal) is already journaled (the
        caller dedupes first, and must roll back on any error). Locks the chain's head row
        until the caller's transaction ends, so writers of one chain queue and writers of
        other chains proceed."""
        entries = _checked(chain, entries, recorded_at)
        if not entries:
            return []
        head_seq, prev, _, _ = self._lock_head(conn, chain)
        seqs, last = self._write_entries(conn, chain, (head_seq, prev), entries, recorded_at)
        self._move_head(conn, chain, chain_seq=head_seq + len(entries), hash=last)
        return seqs

    def _write_entries(
        self,
        conn: Connection,
        chain: str,
        head: tuple[int, str],
        entries: list[JournalEntry],
        recorded_at: int,
    ) -> tuple[list[int], str]:
        """Write checked ``entries`` after ``head`` (last chain_seq, last hash) of a locked
        chain, with their postings and balances; returns their seqs and the last hash."""
        head_seq, prev = head
        seqs = self.allocate(conn, "entries", len(entries))
        sums: dict[tuple[str, str], int] = defaultdict(int)
        # Rows are built and copied a chunk at a time: a settlement run can bring one entry
        # per due order, and rows held all at once would cost several times the entries.
        for start in range(0, len(entries), ROWS_PER_COPY):
            entry_rows: list[dict[str, Any]] = []
            posting_rows: list[dict[str, Any]] = []
            for offset in range(start, min(start + ROWS_PER_COPY, len(entries))):
                seq, entry = seqs[offset], entries[offset]
                chain_seq = head_seq + 1 + offset
                digest = link_hash_checked(prev, chain, chain_seq, entry)
                entry_rows.append(
                    _entry_row(seq, chain, chain_seq, entry, recorded_at, prev, digest)
                )
                for ordinal, p in enumerate(entry.postings):
                    posting_rows.append(
                        {
                            "entry_seq": seq,
                            "ordinal": ordinal,
                            "account": p.account,
                            "currency": p.currency,
                            "amount": p.amount,
                            "occurred_at": entry.occurred_at,
                        }
                    )
                    sums[(p.account, p.currency)] += p.amount
                prev = digest
            self.bulk_insert(conn, tables.entries, entry_rows)
            self.bulk_insert(conn, tables.postings, posting_rows)
        self._add_to_balances(conn, chain, sums)
        return seqs, prev

    def _move_head(self, conn: Connection, chain: str, **values: object) -> None:
        heads = tables.chain_heads
        conn.execute(update(heads).where(heads.c.chain == chain).values(**values))

    def _add_to_balances(
        self, conn: Connection, chain: str, sums: Mapping[tuple[str, str], int]
    ) -> None:
        """Add the net amount per (account, currency) to ``account_balances`` (see
        tables.py), in the same transaction. The shard's rows are only written under this
        chain's head lock."""
        shard = self.specifics.balance_shard(chain)
        rows = [
            (account, currency, shard, amount)
            for (account, currency), amount in sorted(sums.items())
            if amount
        ]
        if rows:
            self.specifics.add_to_balances(conn, rows)

    def append_events(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert event-log rows, each linked into the hash chain named by its "chain" key
        (ledger/chain/eventlog.py), in order. Locks those chains' head rows like append_entries."""
        self.append_batch(conn, rows, {}, 0)

    def append_batch(
        self,
        conn: Connection,
        events: Sequence[dict[str, Any]],
        entries: Mapping[str, Sequence[JournalEntry]],
        recorded_at: int,
    ) -> None:
        """A batch's event-log rows and journal entries. Every chain involved is locked
        first, in name order, so two batches never wait on each other in a cycle; each
        chain's head is read once and written once."""
        checked = {
            chain: _checked(chain, chain_entries, recorded_at)
            for chain, chain_entries in entries.items()
        }
        by_chain: dict[str, list[dict[str, Any]]] = {}
        for row in events:
            by_chain.setdefault(row["chain"], []).append(row)
        for chain in by_chain:
            _check_chain(chain)
        for chain in sorted(set(by_chain) | {c for c, e in checked.items() if e}):
            head_seq, head_hash, events_seq, events_hash = self._lock_head(conn, chain)
            moved: dict[str, object] = {}
            if chain in by_chain:
                new_seq, new_hash = link_events(chain, (events_seq, events_hash), by_chain[chain])
                moved.update(events_seq=new_seq, events_hash=new_hash)
            chain_entries = checked.get(chain)
            if chain_entries:
                _, last = self._write_entries(
                    conn, chain, (head_seq, head_hash), chain_entries, recorded_at
                )
                moved.update(chain_seq=head_seq + len(chain_entries), hash=last)
            self._move_head(conn, chain, **moved)
        self.bulk_insert(conn, tables.events, events)

    def lock_chains(self, conn: Connection, chains: Iterable[str]) -> None:
        """Lock the head rows of ``chains`` in name order (as ``append_batch`` does), for a
        batch that appends to them in several steps."""
        for chain in sorted(set(chains)):
            _check_chain(chain)
            self._lock_head(conn, chain)

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


def _checked(chain: str, entries: Sequence[JournalEntry], recorded_at: int) -> list[JournalEntry]:
    """``entries`` as a list once every one is well typed and balanced (raises otherwise,
    before anything is written)."""
    _check_chain(chain)
    if type(recorded_at) is not int:
        raise TypeError(f"recorded_at must be an int, not {recorded_at!r}")
    checked = list(entries)
    for entry in checked:
        validate_entry(entry)
        entry.check_balanced()
    return checked


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
