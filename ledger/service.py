"""The application service: ingest one batch of events in one database transaction.

Everything a batch produces commits together or not at all: journal entries (hash
chained), the event log, dead letters, parked events, reference state and, when the
batch came from Kafka, the consumed offsets. A crash anywhere therefore loses and
duplicates nothing: on restart the consumer resumes from the offsets stored here, and
any event seen again is a no-op by its event id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ledger.dead_letters import DeadLetter
from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.events import Event, SettlementRun
from ledger.domain.kinds import OutcomeName
from ledger.domain.model import Order
from ledger.domain.prefetch import decide, prefetch
from ledger.domain.processor import Duplicate, Incoming, Result, process
from ledger.domain.reasons import Reason
from ledger.domain.state import WorkingState
from ledger.logs import get_logger
from ledger.offsets import Advance, Fenced, Marker, Stored, TopicPartition, advances_for, after
from ledger.payload import dump_event
from ledger.store import offsets as stored_offsets
from ledger.store.batch import BatchTransaction, BatchWrite, LoggedEvent, begin_batch
from ledger.store.errors import DUPLICATE_KEY, UNAVAILABLE
from ledger.store.store import Store

log = get_logger("ledger.service")

_OUTCOME_NAME: dict[type, OutcomeName] = {
    Applied: "applied",
    Rejected: "rejected",
    Parked: "parked",
}


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
    dead_letters: list[DeadLetter] = field(default_factory=list)  # as committed

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
            with begin_batch(self.store) as tx:
                return self._ingest(tx, batch, advances, group, optimistic=True)
        except DUPLICATE_KEY:
            # a duplicate the optimistic pass assumed away (a redelivery, a reused id):
            # redo the batch checking every id first. Rare: only after a crash or a
            # publisher's retry does an event come again.
            log.debug("redoing a batch with duplicate checks", size=len(batch))
            with begin_batch(self.store) as tx:
                return self._ingest(tx, batch, advances, group, optimistic=False)

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
        return stored_offsets.claim_partitions(self.store, group, partitions)

    def progress(self, group: str) -> dict[TopicPartition, Stored]:
        """Every checkpoint of ``group``, as committed."""
        return stored_offsets.progress(self.store, group)

    def _ingest(
        self,
        tx: BatchTransaction,
        batch: Sequence[Received | Undecodable],
        advances: Sequence[Advance],
        group: str | None,
        *,
        optimistic: bool,
    ) -> BatchReport:
        # first: a fenced batch stops here, and the row locks order rival writers
        tx.advance(group or "", advances)
        now = self.clock()
        report = BatchReport(received=len(batch))
        received = [item for item in batch if isinstance(item, Received)]
        arrivals = iter(tx.arrivals(len(received)))
        incoming = [Incoming(r.event, next(arrivals), r.source, r.chain) for r in received]
        undecodable = [item for item in batch if isinstance(item, Undecodable)]
        parts = _parts(incoming)
        if len(parts) > 1:  # every chain locked first, in name order, as for one part
            tx.lock_chains(i.chain for i in incoming)
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            self._apply(tx, part, undecodable if last else [], report, now, optimistic)
        return report

    def _apply(
        self,
        tx: BatchTransaction,
        part: list[Incoming],
        undecodable: list[Undecodable],
        report: BatchReport,
        now: int,
        optimistic: bool,
    ) -> None:
        """Decide ``part`` of a batch and write it (and the ``undecodable`` records as dead
        letters) in the batch's transaction, counting it in ``report``."""
        loader = tx.state_loader()
        run = _settlement_run(part)
        if run is not None:
            # its pages are written as they are decided, and its balances checked exactly
            written = [0]

            def write(entries: list[JournalEntry], orders: list[Order]) -> None:
                tx.write_page(run.chain, entries, orders, now)
                written[0] += len(entries)

            state = WorkingState(loader, page_sink=write)
            prefetch(state, [run.event], optimistic=optimistic)
            results = process(part, state)
            report.entries += written[0]
        else:
            results, state = decide(loader, part, optimistic=optimistic, on_redo=_redoing)

        logged: list[LoggedEvent] = []
        dead: list[DeadLetter] = []
        chains: dict[str, list[JournalEntry]] = {}
        for result in results:
            _account(result, report, logged, dead, chains, now)
        for item in undecodable:
            report.undecodable += 1
            reasons = report.undecodable_reasons
            reasons[item.reason] = reasons.get(item.reason, 0) + 1
            dead.append(_undecodable_dead_letter(item, now))

        persisted = tx.persist(BatchWrite(now, logged, chains, dead, state.changes()))
        for skipped in persisted.already_dead:
            _count_as_duplicate(skipped, report)
        report.dead_letters += persisted.dead_letters

    def stored_offsets(self, group: str) -> dict[TopicPartition, int]:
        """The next offset to read per (topic, partition), as last committed here."""
        return {tp: s.next_offset for tp, s in self.progress(group).items()}


def _parts(incoming: list[Incoming]) -> list[list[Incoming]]:
    """The batch cut around each settlement run: a run is a part of its own, decided and
    written after everything before it and before everything after it, all in the
    batch's transaction. A run over millions of orders is then written page by page, and
    the ledger is the one a batch cut there anyway would give (batch boundaries change
    nothing: tests/integration/test_service_properties.py). Always at least one part."""
    parts: list[list[Incoming]] = [[]]
    for inc in incoming:
        if isinstance(inc.event, SettlementRun):
            parts += [[inc], []]
        else:
            parts[-1].append(inc)
    return [part for part in parts if part] or [[]]


def _settlement_run(part: list[Incoming]) -> Incoming | None:
    if len(part) == 1 and isinstance(part[0].event, SettlementRun):
        return part[0]
    return None


def _account(
    result: Result,
    report: BatchReport,
    logged: list[LoggedEvent],
    dead: list[DeadLetter],
    chains: dict[str, list[JournalEntry]],
    now: int,
) -> None:
    """Count ``result`` in ``report`` and collect what it writes."""
    inc, outcome = result.incoming, result.outcome
    event = inc.event
    if isinstance(outcome, Duplicate):
        report.duplicates += 1
        return
    kind = _OUTCOME_NAME[type(outcome)]
    report.count(event.TYPE, kind)
    payload = dump_event(event)
    if result.released:
        report.released += 1
    else:
        logged.append(LoggedEvent(inc, kind, payload))
    if isinstance(outcome, Applied):
        report.applied += 1
        report.entries += len(outcome.entries)
        chains.setdefault(inc.chain, []).extend(outcome.entries)
        if report.last_event_time is None or event.occurred_at > report.last_event_time:
            report.last_event_time = event.occurred_at
    elif isinstance(outcome, Rejected):
        report.rejected += 1
        report.reasons[outcome.reason] = report.reasons.get(outcome.reason, 0) + 1
        dead.append(
            DeadLetter(
                source=inc.source,
                reason=outcome.reason,
                message=outcome.message,
                payload=payload,
                recorded_at=now,
                event_id=event.event_id,
                event_type=event.TYPE,
            )
        )
    else:
        report.parked += 1


def _undecodable_dead_letter(item: Undecodable, now: int) -> DeadLetter:
    return DeadLetter(
        source=item.source,
        reason=item.reason,
        message=item.message,
        payload=item.payload,
        recorded_at=now,
        event_id=item.event_id,
        event_type=item.event_type,
        undecodable=True,
    )


def _count_as_duplicate(dead: DeadLetter, report: BatchReport) -> None:
    """Move a dead letter's count from rejected/undecodable to duplicates (its record was
    a dead letter already)."""
    reason = dead.reason
    if dead.undecodable:
        report.undecodable -= 1
        counts = report.undecodable_reasons
    else:
        report.rejected -= 1
        counts = report.reasons
        assert dead.event_type is not None  # a rejected event has its type
        per_type = report.by_type[dead.event_type]
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
        event_id=event.event_id,  # the store keeps it only if it is a usable id
        event_type=event.TYPE,
        position=item.position,
    )


def _redoing(balances: int) -> None:
    log.info("redoing a batch with balances checked", balances=balances)
