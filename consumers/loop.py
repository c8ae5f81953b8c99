"""The Kafka consumer loop: poll, put records in arrival order, apply them in batches.

Each turn: poll the owned partitions (consumers/client.py), decode the records into the
merger (consumers/ordering.py), take the longest prefix of the arrival order this process
may apply now and apply it in one transaction (ledger/service.py), which also moves each
partition's checkpoint by compare-and-set (ledger/offsets.py). See docs/ordering.md for
the order and docs/ingestion.md for the commit order.

- Exactly once: the checkpoints live in the database, in the batch's transaction; Kafka's
  committed offsets are only for lag tools. On assignment a partition starts from its
  stored checkpoint.
- Fenced: a batch whose start is not the stored checkpoint (another process applied the
  partition meanwhile) commits nothing; the loop drops what it had buffered and starts
  again from the database.
- Failover: after the database was unreachable, and every few seconds while idle, the
  owned partitions' checkpoints are read back; if the database's are not where this
  process committed them (a promoted standby that lacked the last commits: asynchronous
  replication), everything is started again from the database, so the lost tail is
  applied again (docs/operations.md, "A standby, and failing over to it").
- Waiting: an orders partition held at a marker, or a barrier waiting for partitions owned
  by other processes, looks at their committed progress in the database, with a short
  growing interval.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from consumers.client import CONSUMER_DEFAULTS, ConsumerConfig, PartitionClient, names
from consumers.decode import decode_partition
from consumers.metrics import ConsumerMetrics
from consumers.ordering import Batch, Item, Merger
from consumers.retry import Backoff, retry
from ledger import compiled
from ledger.dead_letters import DeadLetter
from ledger.domain.reasons import Reason
from ledger.kafka.topics import ACCOUNTS_EVENTS, ORDERS_EVENTS
from ledger.logs import get_logger
from ledger.offsets import Fenced, Marker, Stored
from ledger.offsets import TopicPartition as TP
from ledger.service import BatchReport, LedgerService, Undecodable
from ledger.store.errors import UNAVAILABLE

log = get_logger("ledger.consumer")

WAIT_FIRST_S = 0.001  # how soon a waiting process first looks at the others' progress
WAIT_MAX_S = 0.01
BUFFER_RECORDS = 20_000  # per partition, fetched but not yet applicable
WAIT_LOG_S = 5.0  # how often a waiting consumer says what it waits for
DB_RETRY = "database unavailable or conflicting"  # logged as "...; retrying", any step
FENCED = "fenced: another consumer applied a partition first; resynced from the database"
CHECKPOINTS_BEHIND = (
    "checkpoints in the database are not where this consumer committed them; "
    "resynced from the database"
)
CHECKPOINTS_CHECK_S = 5.0  # how often an idle consumer reads its checkpoints back


class ConsumerLoop:
    """Runs until ``stop()``; then finishes the batch in hand, commits and returns."""

    def __init__(
        self,
        config: ConsumerConfig,
        service: LedgerService,
        metrics: ConsumerMetrics | None = None,
        sleep: Callable[[float], None] | None = None,
        dead_letter_sink: Callable[[list[DeadLetter]], None] | None = None,
        seal: Callable[[int, list[int]], None] | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.metrics = metrics or ConsumerMetrics()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._dead_letter_sink = dead_letter_sink
        self._seal = seal  # writes repair markers (Publisher.seal)
        # kafka-python calls the rebalance listener on its network thread: the loop's
        # thread takes the changes from this queue, so only it touches the merger
        self._rebalances: queue.SimpleQueue[tuple[str, list[TP]]] = queue.SimpleQueue()
        self.client = PartitionClient(
            config,
            on_assigned=lambda tps: self._rebalances.put(("assigned", tps)),
            on_revoked=lambda tps: self._rebalances.put(("revoked", tps)),
            stopping=self._stop.is_set,
            wait=self._sleep,
        )
        self.merger: Merger | None = None
        self.batches = 0
        self.fenced = 0
        self._others: dict[TP, Stored] = {}  # progress of partitions owned elsewhere
        self._wait_s = WAIT_FIRST_S
        self._accounts_end = 0  # highest accounts end offset seen (markers must be below)
        self._blocked_since: tuple[int, float] | None = None  # (barrier, monotonic time)
        self._waiting_since: float | None = None
        self._wait_logged = 0.0
        self._db_outage = False  # a database call failed since the checkpoints were read back
        self._checked_at = time.monotonic()

    def stop(self) -> None:
        """Thread-safe; not from a signal handler (see ledger/commands/consume.py)."""
        self._stop.set()
        self.client.interrupt()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def owned(self) -> list[TP]:
        """The partitions this consumer owns now."""
        return self.merger.owned() if self.merger is not None else []

    def position(self, tp: TP) -> int | None:
        """The next offset of ``tp`` this loop has applied and counted in its metrics; None
        while it does not own ``tp``. Thread-safe to read. The database's stored offset
        moves first (the batch's commit), so a metric read when only that has moved can
        miss the batch: wait for this instead."""
        merger = self.merger
        stored = merger.stored(tp) if merger is not None else None
        return stored.next_offset if stored is not None else None

    # -- assignment ------------------------------------------------------------------------

    def _assigned(self, assigned: list[TP]) -> None:
        """Start every newly assigned partition from its checkpoint in the database."""
        stored = self._db(
            lambda: self.service.claim(self.config.group_id, assigned),
            "claiming partitions",
        )
        assert self.merger is not None
        for tp in assigned:
            self.merger.own(tp, stored[tp])
            self.client.seek(tp, stored[tp].next_offset)
        self._others = stored
        log.info(
            "partitions assigned",
            partitions=names(assigned),
            from_database={f"{tp[0]}/{tp[1]}": stored[tp].next_offset for tp in assigned},
        )

    def _revoked(self, revoked: list[TP]) -> None:
        assert self.merger is not None
        for tp in revoked:
            self.merger.disown(tp)
        log.info("partitions revoked", partitions=names(revoked))

    def _resync(self, why: str, message: str = FENCED) -> None:
        """Forget what is buffered and start every owned partition again from the
        database (after being fenced, or finding the database's checkpoints behind)."""
        assert self.merger is not None
        owned = self.merger.owned()
        stored = self._db(
            lambda: self.service.claim(self.config.group_id, owned),
            "resyncing",
        )
        for tp in owned:
            self.merger.own(tp, stored[tp])
            self.client.seek(tp, stored[tp].next_offset)
        self._others = stored
        log.warning(message, reason=why, partitions=names(owned))

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        if not self.client.open():
            return
        orders = self.client.partition_count(self.config.orders_topic)
        self.merger = Merger(self.config.orders_topic, self.config.accounts_topic, orders)
        log.info(
            "consumer started",
            group=self.config.group_id,
            topics=self.config.topics,
            orders_partitions=orders,
            domain=compiled.STATUS,  # the rules compiled or interpreted (ledger/compiled.py)
        )
        try:
            while not self.stopping:
                waiting = self._turn()
                self._update_lag()
                if waiting:
                    self._wait_s = min(self._wait_s * 2, WAIT_MAX_S)
                else:
                    self._wait_s = WAIT_FIRST_S
        finally:
            self.client.close()
            log.info("consumer stopped", batches=self.batches, fenced=self.fenced)

    def _turn(self) -> bool:
        """One poll and whatever can be applied after it; True if the process is waiting
        for other processes' progress."""
        assert self.merger is not None
        # waiting for other processes: look again soon; a process that owns every
        # partition only ever waits for records, which a normal poll returns at once
        waiting = not self._owns_everything() and self.merger.waiting_for(self._others) is not None
        timeout = int(self._wait_s * 1000) if waiting else self.config.poll_timeout_ms
        polled = self.client.poll(timeout)
        fresh = self._take_rebalances()
        for tp, records in polled.items():
            if tp not in fresh:  # fetched before the seek to its checkpoint: fetched again
                accounts = tp[0] == self.config.accounts_topic
                allowed = ACCOUNTS_EVENTS if accounts else ORDERS_EVENTS
                items = decode_partition(tp[0], tp[1], records, allowed, finance_topic=accounts)
                self.merger.add(tp, self._checked(items))
        self._reconcile()
        if waiting:
            self._others = self._db(
                lambda: self.service.progress(self.config.group_id),
                "reading progress",
            )
        applied = False
        while not self.stopping:
            batch = self.merger.next_batch(self._others, self.config.max_batch)
            if not batch.items:
                break
            self._apply(batch)
            applied = True
        idle_check = not applied and time.monotonic() - self._checked_at >= CHECKPOINTS_CHECK_S
        if (self._db_outage or idle_check) and not self.stopping:
            self._check_checkpoints()
        self._bound_buffers()
        reason = self.merger.waiting_for(self._others)
        if reason == "markers":
            self._repair_markers()
        if reason is not None and not applied:
            self._report_wait(reason)
        else:
            self._waiting_since = None
        return reason is not None and not applied

    def _check_checkpoints(self) -> None:
        """Read the owned partitions' checkpoints back; resync if the database's are not
        where this process committed them.

        Why: after a failover to a standby that lacked the last commits, the checkpoints
        are as far back as the data (they commit together), while this process believes
        them further on. A busy consumer finds out anyway (its next batch is fenced); an
        idle one whose last batch was lost would wait for records that may never come."""
        assert self.merger is not None
        self._db_outage = False
        self._checked_at = time.monotonic()
        stored = self._db(
            lambda: self.service.progress(self.config.group_id), "checking checkpoints"
        )
        # Only a database behind this process is a lost commit. A marker recorded in memory
        # and not yet stored is not: resyncing on it while waiting at a barrier threw the
        # wait away every few seconds, and the consumer never moved on (the cluster test).
        differ = [
            tp
            for tp in self.merger.owned()
            if stored.get(tp, Stored(0)).next_offset
            < (self.merger.stored(tp) or Stored(0)).next_offset
        ]
        if differ:
            self._resync(
                "database at "
                + ", ".join(
                    f"{tp[0]}/{tp[1]}@{stored.get(tp, Stored(0)).next_offset}" for tp in differ
                ),
                CHECKPOINTS_BEHIND,
            )

    def _report_wait(self, reason: str) -> None:
        """Log, every few seconds, what a process that cannot go on is waiting for."""
        assert self.merger is not None
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = self._wait_logged = now
            return
        if now - self._wait_logged < WAIT_LOG_S:
            return
        self._wait_logged = now
        barrier = self.merger.next_barrier()
        view = self.merger.view(self._others)
        log.info(
            "waiting for other consumers",
            reason=reason,
            seconds=round(now - self._waiting_since, 1),
            next_barrier=barrier,
            lagging=names(self.merger.lagging_partitions(barrier, view))
            if barrier is not None
            else [],
            checkpoints={
                f"{tp[0]}/{tp[1]}": [s.next_offset, s.marker] for tp, s in sorted(view.items())
            },
            buffered={f"{tp[0]}/{tp[1]}": self.merger.buffered(tp) for tp in self.merger.owned()},
            fetching=self.client.positions(),
        )

    def _take_rebalances(self) -> set[TP]:
        """Apply the assignments and revocations the client reported, in order; returns
        the partitions (re)assigned."""
        assigned: set[TP] = set()
        while True:
            try:
                kind, partitions = self._rebalances.get_nowait()
            except queue.Empty:
                return assigned
            if kind == "assigned":
                self._assigned(partitions)
                assigned.update(partitions)
            else:
                self._revoked(partitions)

    def _reconcile(self) -> None:
        """Own exactly what the client is assigned, also if a rebalance listener call
        ever went missing (see client._settle_group): a partition the client fetches but
        the merger does not own would never be applied."""
        assert self.merger is not None
        if self.client.rebalancing() or not self._rebalances.empty():
            return  # the listener reports the join's outcome
        assigned, owned = set(self.client.assignment()), set(self.merger.owned())
        if assigned != owned:
            log.warning(
                "assignment changed without a rebalance callback; reconciling",
                gained=names(assigned - owned),
                lost=names(owned - assigned),
            )
            if owned - assigned:
                self._revoked(sorted(owned - assigned))
            if assigned - owned:
                self._assigned(sorted(assigned - owned))

    def _bound_buffers(self) -> None:
        """A partition held at a marker keeps being fetched; past a bound, what it
        fetched beyond is forgotten and fetched again later, so memory stays bounded.
        (Seeking back, not pausing: kafka-python 3.0.12 can stop fetching a partition
        paused and sought while a fetch of it was in flight.)"""
        assert self.merger is not None
        for tp in self.merger.owned():
            again = self.merger.trim(tp, keep=BUFFER_RECORDS)
            if again is not None:
                self.client.seek(tp, again)

    def _owns_everything(self) -> bool:
        assert self.merger is not None
        return len(self.merger.owned()) == len(self.merger.orders) + 1

    def _checked(self, items: list[Item]) -> list[Item]:
        """A marker for a barrier the accounts topic does not have yet cannot be from a
        publisher that waited for the barrier's acknowledgement: a dead letter, not a
        partition held forever."""
        for n, item in enumerate(items):
            if isinstance(item, Marker) and item.barrier >= self._accounts_end:
                self._refresh_accounts_end()
                if item.barrier >= self._accounts_end:
                    items[n] = Undecodable(
                        item.source,
                        Reason.MARKER_AHEAD_OF_ACCOUNTS,
                        f"marker for accounts offset {item.barrier}, but the accounts topic "
                        f"ends at {self._accounts_end}",
                        "",
                        position=item.position,
                    )
        return items

    def _refresh_accounts_end(self) -> None:
        accounts = (self.config.accounts_topic, 0)
        self._accounts_end = max(
            self._accounts_end, self.client.end_offsets([accounts]).get(accounts, 0)
        )

    def _apply(self, batch: Batch) -> None:
        assert self.merger is not None
        started = time.perf_counter()
        starts = {tp: s for tp in self.merger.owned() if (s := self.merger.stored(tp))}
        try:
            report: BatchReport = self._db(
                lambda: self.service.ingest_isolating(
                    batch.items, starts=starts, group=self.config.group_id
                ),
                "applying a batch",
                count=True,
            )
        except Fenced as fenced:
            self.fenced += 1
            self._resync(str(fenced))
            return
        # counted before the loop's positions move (``position``): whoever sees a position
        # sees the metrics of every batch before it (the Kafka commit below may take long)
        elapsed = time.perf_counter() - started
        self.metrics.observe_batch(report, elapsed)
        self.merger.committed(batch)
        self.batches += 1
        self.client.commit({(a.topic, a.partition): a.end for a in batch.advances})
        if self._dead_letter_sink is not None and report.dead_letters:
            self._dead_letter_sink(report.dead_letters)  # after the commit: a mirror only
        log.info(
            "batch applied",
            size=len(batch),
            applied=report.applied,
            rejected=report.rejected,
            parked=report.parked,
            released=report.released,
            duplicates=report.duplicates,
            undecodable=report.undecodable,
            entries=report.entries,
            seconds=round(elapsed, 4),
            lag=self.metrics.total_lag(),
        )
        if report.reasons:
            log.info("rejections", reasons=report.reasons)

    def _repair_markers(self) -> None:
        """A barrier has waited ``marker_grace_s`` for partitions that are read to their
        end and still have no marker for it: its publisher died between the barrier and
        its markers. Write them (the cut falls at the end of those partitions)."""
        assert self.merger is not None
        barrier = self.merger.next_barrier()
        if barrier is None or self._seal is None:
            return
        now = time.monotonic()
        if self._blocked_since is None or self._blocked_since[0] != barrier:
            self._blocked_since = (barrier, now)
            return
        if now - self._blocked_since[1] < self.config.marker_grace_s:
            return
        progress = self.merger.view(self._others)
        lagging = self.merger.lagging_partitions(barrier, progress)
        ends = self.client.end_offsets(lagging)
        idle = [
            tp[1] for tp in lagging if progress.get(tp, Stored(0)).next_offset >= ends.get(tp, 0)
        ]
        if idle:
            self._refresh_accounts_end()
            log.warning(
                "barrier without markers; writing them",
                barrier=barrier,
                partitions=idle,
                covers_up_to=self._accounts_end - 1,
            )
            self._seal(self._accounts_end - 1, idle)
        self._blocked_since = (barrier, now)

    def _update_lag(self) -> None:
        """Lag per owned partition: the high watermark minus the stored checkpoint."""
        assert self.merger is not None
        for tp in self.merger.owned():
            high = self.client.highwater(tp)
            stored = self.merger.stored(tp)
            if high is not None and stored is not None:
                self.metrics.set_lag(tp[0], tp[1], max(0, high - stored.next_offset))

    def _db(self, action: Callable[[], Any], step: str, count: bool = False) -> Any:
        """A database action, retried while the database is down, restarting, or chose
        this transaction as a deadlock victim (it rolled back, so retrying is safe). Every
        step logs the same retry event (DB_RETRY), the step in a field of its own."""
        return retry(
            action,
            on=UNAVAILABLE,
            what=DB_RETRY,
            step=step,
            wait=self._sleep,
            stopping=self._stop.is_set,
            backoff=Backoff(cap=self.config.max_backoff_s),
            on_retry=lambda: self._db_failed(count),
        )

    def _db_failed(self, count: bool) -> None:
        self._db_outage = True  # the checkpoints are read back once it answers again
        if count:
            self.metrics.db_retries.inc()


__all__ = ["CONSUMER_DEFAULTS", "BatchReport", "ConsumerConfig", "ConsumerLoop"]
