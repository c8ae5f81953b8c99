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
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.events import (
    ClickRecorded,
    Event,
    OrderCompleted,
    OrderPlaced,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    RefundIssued,
    SettlementRun,
    SharerEnrolled,
)
from ledger.domain.processor import Duplicate, Incoming, Result, process
from ledger.domain.state import WorkingState
from ledger.domain.validation import valid_event_id
from ledger.logs import get_logger
from ledger.payload import dump_event
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
        for name in ("received", "applied", "rejected", "parked", "released", "duplicates",
                     "undecodable", "entries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.reasons, other.reasons),
                             (self.undecodable_reasons, other.undecodable_reasons)):
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


Offsets = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


class LedgerService:
    def __init__(self, store: Store, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.store = store
        self.clock = clock

    def ingest(
        self,
        batch: Sequence[Received | Undecodable],
        *,
        offsets: Offsets | None = None,
        group: str | None = None,
    ) -> BatchReport:
        """Apply ``batch`` in arrival order, in one transaction, and record ``offsets``
        for consumer ``group`` in the same transaction. Raises only for infrastructure
        failures (the transaction is then rolled back whole, and the batch can be retried)."""
        try:
            with self.store.begin() as conn:
                return self._ingest(conn, batch, offsets or {}, group, optimistic=True)
        except IntegrityError:
            # a duplicate the optimistic pass assumed away (a redelivery, a reused id):
            # redo the batch checking every id first. Rare: only after a crash or a
            # publisher's retry does an event come again.
            log.info("redoing a batch with duplicate checks", size=len(batch))
            with self.store.begin() as conn:
                return self._ingest(conn, batch, offsets or {}, group, optimistic=False)

    def ingest_isolating(
        self, batch: Sequence[Received | Undecodable], *, group: str | None = None
    ) -> BatchReport:
        """Like ``ingest``, with the offsets taken from the items' positions, and a batch
        the database refuses for a reason other than its availability is split in halves
        until the one record at fault is found: that record becomes a dead letter
        (``unstorable``) and every other record is applied. One bad record never blocks
        the ones behind it. Connection losses and deadlocks (``UNAVAILABLE``) are raised
        for the caller to retry the whole batch."""
        try:
            return self.ingest(batch, offsets=_offsets_of(batch), group=group)
        except UNAVAILABLE:
            raise
        except Exception as exc:  # noqa: BLE001 - isolate whatever the database refused
            if len(batch) == 1:
                log.error("record refused by the database; kept as a dead letter",
                          source=batch[0].source, error=str(exc)[:500])
                return self.ingest([_unstorable(batch[0], exc)], offsets=_offsets_of(batch),
                                   group=group)
            middle = len(batch) // 2
            first = self.ingest_isolating(batch[:middle], group=group)
            return first.merge(self.ingest_isolating(batch[middle:], group=group))

    def _ingest(
        self, conn: Connection, batch: Sequence[Received | Undecodable], offsets: Offsets,
        group: str | None, *, optimistic: bool,
    ) -> BatchReport:
        now = self.clock()
        report = BatchReport(received=len(batch))
        received = [item for item in batch if isinstance(item, Received)]
        arrivals = iter(self.store.allocate(conn, "arrival", len(received)))
        incoming = [Incoming(r.event, next(arrivals), r.source, r.chain) for r in received]

        state = WorkingState(SqlStateLoader(conn, lock_rows=self.store.backend == "postgresql"))
        _prefetch(state, [i.event for i in incoming], optimistic=optimistic)
        results = process(incoming, state)

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
                dead_rows.append({
                    "event_id": _storable_id(item.event_id), "event_type": item.event_type,
                    "source": item.source, "reason": item.reason,
                    "message": _storable_text(item.message),
                    "payload": _storable_text(item.payload), "recorded_at": now,
                })

        self.store.append_batch(conn, events_rows, chains, now)  # locks chains in one order
        if dead_rows:
            for row, dead_id in zip(
                dead_rows, self.store.allocate(conn, "dead_letters", len(dead_rows)), strict=True
            ):
                row["id"] = dead_id
            self.store.bulk_insert(conn, t.dead_letters, dead_rows)
            report.dead_letters = dead_rows
        write_changes(conn, self.store.bulk_insert, state.changes(), now)
        if offsets:
            self._save_offsets(conn, group or "", offsets)
        return report

    @staticmethod
    def _account(
        result: Result, report: BatchReport, events_rows: list, dead_rows: list,
        chains: dict[str, list[JournalEntry]], now: int,
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
            events_rows.append({
                "seq": inc.arrival, "event_id": event.event_id, "type": event.TYPE,
                "occurred_at": event.occurred_at, "recorded_at": now, "source": inc.source,
                "outcome": kind, "payload": payload, "chain": inc.chain,
            })
        if isinstance(outcome, Applied):
            report.applied += 1
            report.entries += len(outcome.entries)
            chains.setdefault(inc.chain, []).extend(outcome.entries)
            if report.last_event_time is None or event.occurred_at > report.last_event_time:
                report.last_event_time = event.occurred_at
        elif isinstance(outcome, Rejected):
            report.rejected += 1
            report.reasons[outcome.reason] = report.reasons.get(outcome.reason, 0) + 1
            dead_rows.append({
                "event_id": _storable_id(event.event_id), "event_type": event.TYPE,
                "source": inc.source,
                "reason": outcome.reason, "message": outcome.message,
                "payload": payload, "recorded_at": now,
            })
        else:
            report.parked += 1

    def _save_offsets(self, conn: Connection, group: str, offsets: Offsets) -> None:
        table = t.consumer_offsets
        rows = [
            {"group_id": group, "topic": topic, "partition": partition, "next_offset": offset}
            for (topic, partition), offset in sorted(offsets.items())
        ]
        stmt = self.store.insert(table).values(rows)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["group_id", "topic", "partition"],
                set_={"next_offset": stmt.excluded.next_offset},
                where=table.c.next_offset < stmt.excluded.next_offset,  # never backwards
            )
        )

    def stored_offsets(self, group: str) -> Offsets:
        """The next offset to read per (topic, partition), as last committed here."""
        table = t.consumer_offsets
        with self.store.read() as conn:
            rows = conn.execute(select(table).where(table.c.group_id == group))
            return {(r.topic, r.partition): r.next_offset for r in rows}


def _offsets_of(batch: Sequence[Received | Undecodable]) -> Offsets:
    offsets: Offsets = {}
    for item in batch:
        if item.position is not None:
            topic, partition, offset = item.position
            key = (topic, partition)
            offsets[key] = max(offsets.get(key, 0), offset + 1)
    return offsets


def _unstorable(item: Received | Undecodable, exc: Exception) -> Undecodable:
    if isinstance(item, Undecodable):
        return Undecodable(item.source, "unstorable", f"{item.reason}: {exc}"[:2000],
                           item.payload, position=item.position)
    event = item.event
    return Undecodable(item.source, "unstorable", f"the database refused it: {exc}"[:2000],
                       dump_event(event), event_id=_storable_id(event.event_id),
                       event_type=event.TYPE, position=item.position)


def _storable_text(text: str) -> str:
    """PostgreSQL text holds no NUL and no lone surrogate: escape them, keep the rest."""
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text


def _storable_id(event_id: str | None) -> str | None:
    return event_id if event_id is not None and valid_event_id(event_id) else None


def _prefetch(state: WorkingState, events: Sequence[Event], *, optimistic: bool) -> None:
    """One bulk look-up per kind of reference the batch's events name.

    ``optimistic``: ids that are only read to detect a duplicate (the event ids, the ids of
    new clicks and orders) are assumed new without a query. A wrong assumption cannot go
    unnoticed: the event, click or order row is then inserted a second time, the unique
    key refuses it, and the batch is redone without assumptions (see ``ingest``)."""
    sharers: set[str] = set()
    named_clicks: set[str] = set()
    new_clicks: set[str] = set()
    click_sharers: dict[str, set[str]] = {}  # buyer -> sharers of this batch's clicks
    buyers: set[str] = set()
    orders: set[str] = set()
    new_orders: set[str] = set()
    refunds: set[str] = set()
    payouts: set[str] = set()
    runs: set[str] = set()
    refs: set[str] = set()  # what events of this batch may release
    first_order_at: int | None = None
    for e in events:
        if isinstance(e, ClickRecorded):
            new_clicks.add(e.click_id)
            click_sharers.setdefault(e.buyer_id, set()).add(e.sharer_id)
        elif isinstance(e, OrderPlaced):
            new_orders.add(e.order_id)
            buyers.add(e.buyer_id)
            refs.add(f"order:{e.order_id}")
            if first_order_at is None or e.occurred_at < first_order_at:
                first_order_at = e.occurred_at
            if e.click_id:
                named_clicks.add(e.click_id)
        elif isinstance(e, (OrderCompleted, RefundIssued)):
            orders.add(e.order_id)
            if isinstance(e, RefundIssued):
                refunds.add(e.refund_id)
        elif isinstance(e, SharerEnrolled):
            sharers.add(e.sharer_id)
            refs.add(f"sharer:{e.sharer_id}")
        elif isinstance(e, (PayoutRequested, PayoutSettled, PayoutFailed)):
            payouts.add(e.payout_id)
            if isinstance(e, PayoutRequested):
                refs.add(f"payout:{e.payout_id}")
        elif isinstance(e, SettlementRun):
            runs.add(e.run_id)
    for buyer in buyers:  # the sharers an order of this batch may be attributed to
        sharers.update(click_sharers.get(buyer, ()))
    event_ids = {e.event_id for e in events}
    if optimistic:
        state.assume_absent(
            processed=event_ids,
            clicks=new_clicks - named_clicks,
            orders=new_orders - orders,
        )
        event_ids = set()
        new_clicks = set()
        new_orders = set()
    # attribution reads clicks back to the longest window of any plan, no further
    longest_window = max((p.window_ms for p in state.plans), default=0)
    state.prefetch(
        sharers=sharers, clicks=named_clicks | new_clicks, buyers=buyers,
        orders=orders | new_orders, refunds=refunds, payouts=payouts, runs=runs,
        processed=event_ids, parked_refs=refs,
        clicks_since=(first_order_at or 0) - longest_window,
    )
    state.prefetch_levels(sharers)
