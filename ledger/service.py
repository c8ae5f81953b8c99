"""The application service: ingest one batch of events in one database transaction.

Everything a batch produces commits together or not at all: journal entries (hash
chained), the event log, dead letters, parked events, reference state and, when the
batch came from Kafka, the consumed offsets. A crash anywhere therefore loses and
duplicates nothing: on restart the consumer resumes from the offsets stored here, and
any event seen again is a no-op by its event id.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.events import Event
from ledger.domain.prefetch import prefetch
from ledger.domain.processor import Duplicate, Incoming, Result, process
from ledger.domain.reasons import Reason
from ledger.domain.state import WorkingState
from ledger.domain.validation import valid_event_id
from ledger.logs import get_logger
from ledger.offsets import Advance, Fenced, Marker, Stored, TopicPartition, advances_for, after
from ledger.payload import dump_event
from ledger.store import offsets as stored_offsets
from ledger.store import tables as t
from ledger.store.base import Store
from ledger.store.state_sql import SqlStateLoader, write_changes

log = get_logger("ledger.service")

# The database is down, restarting, or chose this transaction as a deadlock victim: retry
# the whole batch later. Any other database error is the batch's own fault.
UNAVAILABLE = (OperationalError, InterfaceError)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


Position = tuple[str, int, int]  # (topic, partition, offset) of a Kafka record


@dataclass(frozen=True, slots=True)
class Received:
    """A decoded event and where it came from."""

    event: Event
    source: str  # "topic/partition@offset" or "file.jsonl:line"
    chain: str  # the hash chain its entries join: one per writer partition
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record that never became an event: kept as a dead letter with its raw form."""

    source: str
    reason: str
    message: str
    payload: str  # JSON text, or hex of the raw bytes
    event_id: str | None = None
    event_type: str | None = None
    position: Position | None = None


@dataclass
class BatchReport:
    received: int = 0
    applied: int = 0
    rejected: int = 0
    parked: int = 0
    released: int = 0
    duplicates: int = 0
    undecodable: int = 0
    entries: int = 0
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # rejections by reason
    undecodable_reasons: dict[str, int] = field(default_factory=dict)
    last_event_time: int | None = None
    dead_letters: list[dict[str, Any]] = field(default_factory=list)  # rows as committed

    def merge(self, other: BatchReport) -> BatchReport:
        """The totals of two reports (self is updated and returned)."""
        for name in (
            "received",
            "applied",
            "rejected",
            "parked",
            "released",
            "duplicates",
            "undecodable",
            "entries",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in (
            (self.reasons, other.reasons),
            (self.undecodable_reasons, other.undecodable_reasons),
        ):
            for reason, n in theirs.items():
                mine[reason] = mine.get(reason, 0) + n
        self.dead_letters = self.dead_letters + other.dead_letters
        for event_type, outcomes in other.by_type.items():
            for outcome, n in outcomes.items():
                self.by_type.setdefault(event_type, {})
                self.by_type[event_type][outcome] = self.by_type[event_type].get(outcome, 0) + n
        if other.last_event_time is not None and (
            self.last_event_time is None or other.last_event_time > self.last_event_time
        ):
            self.last_event_time = other.last_event_time
        return self

    def count(self, event_type: str, outcome: str) -> None:
        per_type = self.by_type.setdefault(event_type, {})
        per_type[outcome] = per_type.get(outcome, 0) + 1


class LedgerService:
    def __init__(self, store: Store, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.store = store
        self.clock = clock

    def ingest(
        self,
        batch: Sequence[Received | Undecodable],
        *,
        advances: Sequence[Advance] = (),
        group: str | None = None,
    ) -> BatchReport:
        """Apply ``batch`` in arrival order, in one transaction, moving the checkpoints of
        consumer ``group`` by ``advances`` in the same transaction (compare-and-set:
        ``Fenced`` if another process moved one first). Raises only for infrastructure
        failures and fencing (the transaction is then rolled back whole)."""
        try:
            with self.store.begin() as conn:
                return self._ingest(conn, batch, advances, group, optimistic=True)
        except IntegrityError:
            # a duplicate the optimistic pass assumed away (a redelivery, a reused id):
            # redo the batch checking every id first. Rare: only after a crash or a
            # publisher's retry does an event come again.
            log.info("redoing a batch with duplicate checks", size=len(batch))
            with self.store.begin() as conn:
                return self._ingest(conn, batch, advances, group, optimistic=False)

    def ingest_isolating(
        self,
        items: Sequence[Received | Undecodable | Marker],
        *,
        starts: dict[TopicPartition, Stored] | None = None,
        group: str | None = None,
    ) -> BatchReport:
        """Apply ``items`` (from Kafka: markers included, checkpoints moved from
        ``starts``) like ``ingest``; a batch the database refuses for a reason other than
        its availability is split in halves until the one record at fault is found: that
        record becomes a dead letter (``unstorable``) and every other record is applied.
        One bad record never blocks the ones behind it. Connection losses and deadlocks
        (``UNAVAILABLE``) and ``Fenced`` are raised for the caller."""
        starts = starts or {}
        advances = advances_for(items, starts)
        events = [item for item in items if not isinstance(item, Marker)]
        try:
            return self.ingest(events, advances=advances, group=group)
        except (*UNAVAILABLE, Fenced):
            raise
        except Exception as exc:  # isolate whatever the database refused
            if len(items) == 1:
                if not events:  # a marker alone only moves the checkpoint
                    raise
                log.error(
                    "record refused by the database; kept as a dead letter",
                    source=items[0].source,
                    error=str(exc)[:500],
                )
                return self.ingest([_unstorable(events[0], exc)], advances=advances, group=group)
            middle = len(items) // 2
            first = self.ingest_isolating(items[:middle], starts=starts, group=group)
            rest = after(starts, advances_for(items[:middle], starts))
            return first.merge(self.ingest_isolating(items[middle:], starts=rest, group=group))

    def claim(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Stored]:
        """Make sure ``group`` has a checkpoint row for each partition; returns every
        checkpoint of the group."""
        with self.store.begin() as conn:
            stored_offsets.claim(conn, self.store.insert, group, partitions)
            return stored_offsets.load(conn, group)

    def progress(self, group: str) -> dict[TopicPartition, Stored]:
        """Every checkpoint of ``group``, as committed."""
        with self.store.read() as conn:
            return stored_offsets.load(conn, group)

    def _ingest(
        self,
        conn: Connection,
        batch: Sequence[Received | Undecodable],
        advances: Sequence[Advance],
        group: str | None,
        *,
        optimistic: bool,
    ) -> BatchReport:
        # first: a fenced batch stops here, and the row locks order rival writers
        stored_offsets.advance(conn, group or "", advances)
        now = self.clock()
        report = BatchReport(received=len(batch))
        received = [item for item in batch if isinstance(item, Received)]
        arrivals = iter(self.store.allocate(conn, "arrival", len(received)))
        incoming = [Incoming(r.event, next(arrivals), r.source, r.chain) for r in received]

        loader = SqlStateLoader(conn, lock_rows=self.store.backend == "postgresql")
        exact: set[tuple[str, str]] = set()
        while True:
            state = WorkingState(loader, optimistic_balances=True)
            state.prefetch(balances=exact)
            prefetch(state, [i.event for i in incoming], optimistic=optimistic)
            results = process(incoming, state)
            breached = state.breaches()
            if not breached:
                break
            # rare: a balance near SPEC's ±2^62 bound. Run again checking those balances
            # event by event, so the event at fault is rejected and the rest applied.
            log.info("redoing a batch with balances checked", balances=len(breached))
            exact |= breached

        events_rows: list[dict[str, Any]] = []
        dead_rows: list[dict[str, Any]] = []
        chains: dict[str, list[JournalEntry]] = {}
        for result in results:
            self._account(result, report, events_rows, dead_rows, chains, now)
        for item in batch:
            if isinstance(item, Undecodable):
                report.undecodable += 1
                reasons = report.undecodable_reasons
                reasons[item.reason] = reasons.get(item.reason, 0) + 1
                dead_rows.append(
                    {
                        "event_id": _storable_id(item.event_id),
                        "event_type": item.event_type,
                        "source": item.source,
                        "reason": item.reason,
                        "message": _storable_text(item.message),
                        "payload": _storable_text(item.payload),
                        "recorded_at": now,
                        _UNDECODABLE: True,
                    }
                )

        self.store.append_batch(conn, events_rows, chains, now)  # locks chains in one order
        if dead_rows:
            report.dead_letters = self._store_dead_letters(conn, dead_rows, report)
        write_changes(conn, self.store.bulk_insert, state.changes(), now)
        return report

    @staticmethod
    def _account(
        result: Result,
        report: BatchReport,
        events_rows: list,
        dead_rows: list,
        chains: dict[str, list[JournalEntry]],
        now: int,
    ) -> None:
        inc, outcome = result.incoming, result.outcome
        event = inc.event
        if isinstance(outcome, Duplicate):
            report.duplicates += 1
            return
        kind = {Applied: "applied", Rejected: "rejected", Parked: "parked"}[type(outcome)]
        report.count(event.TYPE, kind)
        payload = dump_event(event)
        if result.released:
            report.released += 1
        elif valid_event_id(event.event_id):  # an unusable id cannot be deduplicated
            events_rows.append(
                {
                    "seq": inc.arrival,
                    "event_id": event.event_id,
                    "type": event.TYPE,
                    "occurred_at": event.occurred_at,
                    "recorded_at": now,
                    "source": inc.source,
                    "outcome": kind,
                    "payload": payload,
                    "chain": inc.chain,
                }
            )
        if isinstance(outcome, Applied):
            report.applied += 1
            report.entries += len(outcome.entries)
            chains.setdefault(inc.chain, []).extend(outcome.entries)
            if report.last_event_time is None or event.occurred_at > report.last_event_time:
                report.last_event_time = event.occurred_at
        elif isinstance(outcome, Rejected):
            report.rejected += 1
            report.reasons[outcome.reason] = report.reasons.get(outcome.reason, 0) + 1
            dead_rows.append(
                {
                    "event_id": _storable_id(event.event_id),
                    "event_type": event.TYPE,
                    "source": inc.source,
                    "reason": outcome.reason,
                    "message": outcome.message,
                    "payload": payload,
                    "recorded_at": now,
                }
            )
        else:
            report.parked += 1

    def _store_dead_letters(
        self, conn: Connection, rows: list[dict[str, Any]], report: BatchReport
    ) -> list[dict[str, Any]]:
        """Insert ``rows``, skipping any whose record is already a dead letter (same
        source, same payload: a file or a topic ingested again). A skipped row counts as a
        duplicate instead of a rejection; returns the rows stored."""
        for row, dead_id in zip(
            rows, self.store.allocate(conn, "dead_letters", len(rows)), strict=True
        ):
            row["id"] = dead_id
            row["dedup_key"] = _dead_letter_key(row["source"], row["payload"])
            if len(row["message"]) > MAX_MESSAGE:  # it may quote a hostile value at length
                row["message"] = row["message"][: MAX_MESSAGE - 1] + "…"
        columns = [c.name for c in t.dead_letters.columns]
        stmt = (
            self.store.insert(t.dead_letters)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(t.dead_letters.c.id)
        )
        stored = set(
            conn.execute(stmt, [{c: row.get(c) for c in columns} for row in rows]).scalars()
        )
        for row in rows:
            if row["id"] not in stored:
                _count_as_duplicate(row, report)
        return [{c: row.get(c) for c in columns} for row in rows if row["id"] in stored]

    def stored_offsets(self, group: str) -> dict[TopicPartition, int]:
        """The next offset to read per (topic, partition), as last committed here."""
        return {tp: s.next_offset for tp, s in self.progress(group).items()}


MAX_MESSAGE = 2000  # characters of a dead letter's message; the payload is kept whole
_UNDECODABLE = "_undecodable"  # marks a dead-letter row counted as undecodable, not rejected


def _dead_letter_key(source: str, payload: str) -> str:
    """The idempotency key of a dead letter: where the record came from (file:line,
    topic/partition@offset) and what it held. The same record again has the same key."""
    return hashlib.sha256(f"{source}\n{payload}".encode("utf-8", "surrogatepass")).hexdigest()


def _count_as_duplicate(row: dict[str, Any], report: BatchReport) -> None:
    """Move a dead-letter row's count from rejected/undecodable to duplicates."""
    reason = row["reason"]
    if row.get(_UNDECODABLE):
        report.undecodable -= 1
        counts = report.undecodable_reasons
    else:
        report.rejected -= 1
        counts = report.reasons
        per_type = report.by_type[row["event_type"]]
        per_type["rejected"] -= 1
        if not per_type["rejected"]:
            del per_type["rejected"]
    counts[reason] -= 1
    if not counts[reason]:
        del counts[reason]
    report.duplicates += 1


def _unstorable(item: Received | Undecodable, exc: Exception) -> Undecodable:
    if isinstance(item, Undecodable):
        return Undecodable(
            item.source,
            Reason.UNSTORABLE,
            f"{item.reason}: {exc}"[:2000],
            item.payload,
            position=item.position,
        )
    event = item.event
    return Undecodable(
        item.source,
        Reason.UNSTORABLE,
        f"the database refused it: {exc}"[:2000],
        dump_event(event),
        event_id=_storable_id(event.event_id),
        event_type=event.TYPE,
        position=item.position,
    )


def _storable_text(text: str) -> str:
    """PostgreSQL text holds no NUL and no lone surrogate: escape them, keep the rest."""
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text


def _storable_id(event_id: str | None) -> str | None:
    return event_id if event_id is not None and valid_event_id(event_id) else None
