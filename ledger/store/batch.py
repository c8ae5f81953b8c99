"""One batch's transaction: what the service decided, written together or not at all.

``begin_batch(store)`` opens the transaction. In it the service moves the consumer
checkpoints first (a fenced batch stops there, and the row locks order rival writers),
numbers the batch's arrivals, reads reference state through ``state_loader()`` and hands
everything the rules decided to ``persist``: the event log, the journal entries by chain,
the dead letters and the reference-state changes. Rows are built here, not in the service.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ledger.dead_letters import DeadLetter
from ledger.domain.entries import JournalEntry
from ledger.domain.kinds import OutcomeName
from ledger.domain.model import Order
from ledger.domain.processor import Incoming
from ledger.domain.state import Changes
from ledger.domain.validation import valid_event_id
from ledger.offsets import Advance
from ledger.store import offsets
from ledger.store.dead_letters import insert_dead_letters
from ledger.store.state_sql import SqlStateLoader, write_changes
from ledger.store.store import Store


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event for the event log: what arrived, from where, and its outcome on arrival."""

    incoming: Incoming
    outcome: OutcomeName
    payload: str  # the event's JSON form (ledger/payload.py)


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """Everything one batch writes, recorded at ``recorded_at`` (ms)."""

    recorded_at: int
    events: Sequence[LoggedEvent]
    entries: Mapping[str, list[JournalEntry]]  # by chain, in order
    dead_letters: Sequence[DeadLetter]
    changes: Changes


@dataclass(frozen=True, slots=True)
class Persisted:
    dead_letters: list[DeadLetter]  # as stored: with ids, text as kept
    already_dead: list[DeadLetter]  # not stored: the same record is a dead letter already


class BatchTransaction:
    """The writes of one batch, on one connection inside one transaction."""

    def __init__(self, store: Store, conn: Connection) -> None:
        self.store = store
        self.conn = conn

    def advance(self, group: str, advances: Sequence[Advance]) -> None:
        """Move the checkpoints of consumer ``group`` (``Fenced`` if one had moved)."""
        offsets.advance(self.conn, group, advances)

    def arrivals(self, n: int) -> list[int]:
        """``n`` arrival numbers (the event log's ``seq``), increasing."""
        return self.store.allocate(self.conn, "arrival", n)

    def state_loader(self) -> SqlStateLoader:
        """Reference state as this transaction sees it; rows a batch may change after
        reading them are locked when several writers share the database."""
        return SqlStateLoader(self.conn, lock_rows=self.store.specifics.locks_rows)

    def lock_chains(self, chains: Iterable[str]) -> None:
        """Take the chains' locks now, in name order, for a batch written in parts."""
        self.store.lock_chains(self.conn, chains)

    def write_page(
        self, chain: str, entries: list[JournalEntry], orders: list[Order], recorded_at: int
    ) -> None:
        """One page of a settlement run, written before the next is read: its entries at
        the end of ``chain`` (with postings and balances) and its orders as settled."""
        self.store.append_entries(self.conn, chain, entries, recorded_at)
        changes = Changes(changed_orders=orders)
        write_changes(self.conn, self.store.bulk_insert, changes, recorded_at)

    def persist(self, batch: BatchWrite) -> Persisted:
        """Write ``batch``: event log and journal (every chain involved locked first, in
        name order), then dead letters (a record already a dead letter is skipped), then
        the reference-state changes."""
        now = batch.recorded_at
        rows = [_event_row(logged, now) for logged in batch.events if _loggable(logged)]
        self.store.append_batch(self.conn, rows, batch.entries, now)
        stored, skipped = insert_dead_letters(self.store, self.conn, batch.dead_letters)
        write_changes(self.conn, self.store.bulk_insert, batch.changes, now)
        return Persisted(stored, skipped)


@contextmanager
def begin_batch(store: Store) -> Iterator[BatchTransaction]:
    """One batch's transaction: commit when the block ends, roll back on any error."""
    with store.begin() as conn:
        yield BatchTransaction(store, conn)


def _loggable(logged: LoggedEvent) -> bool:
    # the event log is deduplicated by event id: an unusable id cannot be
    return valid_event_id(logged.incoming.event.event_id)


def _event_row(logged: LoggedEvent, recorded_at: int) -> dict[str, Any]:
    inc = logged.incoming
    return {
        "seq": inc.arrival,
        "event_id": inc.event.event_id,
        "type": inc.event.TYPE,
        "occurred_at": inc.event.occurred_at,
        "recorded_at": recorded_at,
        "source": inc.source,
        "outcome": logged.outcome,
        "payload": logged.payload,
        "chain": inc.chain,
    }
