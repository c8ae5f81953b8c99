"""Where the API's events go: the embedded ledger (LedgerService on the store) or Kafka.

Finance commands and published events become events on the same path as everything else:
through Kafka when the server was started with it (answer: queued), else applied here at
once in one transaction (answer: the outcome, with the rejection reason if any)."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from ledger.config import Settings
from ledger.domain.events import Event
from ledger.kafka.publisher import (
    DEFAULT_ACK_TIMEOUT_S,
    Publisher,
    PublishError,
    UnpublishableEvent,
)
from ledger.logs import get_logger
from ledger.service import LedgerService, Received
from projectors.follower import ViewFollower

log = get_logger("ledger.api.sink")

# The producer's batching window for the API: records submitted within it share a produce
# request. Short, since each request waits for its own acknowledgement; under load the
# records that arrive while a request is in flight are batched anyway.
GROUP_LINGER_MS = 2


class Sink(Protocol):
    def submit(self, event: Event, source: str) -> dict[str, str | None]: ...
    def close(self) -> None: ...


class EmbeddedSink:
    """Applies each event at once on hash chain ``chain``, then catches the views up."""

    def __init__(self, service: LedgerService, follower: ViewFollower, chain: str = "api") -> None:
        self.service = service
        self.follower = follower
        self.chain = chain

    def submit(self, event: Event, source: str) -> dict[str, str | None]:
        report = self.service.ingest_isolating([Received(event, source, self.chain)])
        self.follower.catch_up_now()  # so the caller's next read sees its own command
        out: dict[str, str | None] = {"event_id": event.event_id}
        if report.duplicates:
            return {**out, "outcome": "duplicate"}
        if report.rejected:
            dead = report.dead_letters[0]
            return {
                **out,
                "outcome": "rejected",
                "reason": dead.reason,
                "message": dead.message,
            }
        return {**out, "outcome": "parked" if report.parked else "applied"}

    def close(self) -> None:
        pass


class SinkUnavailable(RuntimeError):
    """The event could not be handed to Kafka: nothing was applied, the request may be
    retried (the API answers 503)."""


class KafkaSink:
    """Publishes each event and answers once Kafka acknowledged ITS record (acks=all); the
    consumer applies it.

    Group commit: concurrent submits each send their record under the lock (encoding and
    handing it to the producer: microseconds), then wait for their own acknowledgement
    outside it, so the records that arrive while one produce request is in flight go
    together in the next one, instead of one flush per event under the lock (the API's
    publishing was serial: ~30 events/s, bench/README.md). A barrier event (a finance
    command on the accounts topic) is still flushed under the lock: its markers must be
    sent before the next buyer event. A record not acknowledged within ``ack_timeout``
    seconds, or failed, answers SinkUnavailable (503); the publisher is then renewed and
    the old one closed, which fails the records still waiting on it: every waiting
    request gets its answer, none hangs."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._lock = threading.Lock()  # publish and renew: one caller at a time

    @classmethod
    def for_settings(cls, settings: Settings) -> KafkaSink:
        """The sink of `ledger serve --kafka`: buyer activity goes out as the publisher
        principal, barrier events (the accounts topic) as finance (ledger/kafka/auth.py);
        the role table (ledger/domain/permissions.py) has already decided what each API
        token may submit. Raises ConfigError for missing credentials."""
        from ledger.kafka.auth import publisher_options
        from ledger.kafka.publisher import Publisher

        auth = publisher_options(settings)
        return cls(
            Publisher(
                settings.kafka_bootstrap,
                settings.topics,
                auth=auth,
                ack_timeout=settings.kafka_ack_timeout,
                linger_ms=GROUP_LINGER_MS,
                max_block_ms=int(settings.kafka_ack_timeout * 1000),  # a send waits no longer
            )
        )

    def submit(self, event: Event, source: str) -> dict[str, str | None]:
        # one deadline for the whole request: while sends block (no metadata for the
        # topic, say), the requests queued on the lock must not wait one timeout each
        budget = self.publisher.ack_timeout or DEFAULT_ACK_TIMEOUT_S  # the API always has one
        deadline = time.monotonic() + budget
        if not self._lock.acquire(timeout=budget):
            raise SinkUnavailable(f"the events ahead of it were not sent within {budget:g} s")
        try:
            publisher = self.publisher
            try:
                record = publisher.publish(event)
                if publisher.barrier_pending:
                    publisher.flush(max(0.0, deadline - time.monotonic()))
            except PublishError as exc:
                if not isinstance(exc, UnpublishableEvent):  # that one says nothing of Kafka
                    self._renew(publisher)
                raise SinkUnavailable(str(exc)) from exc
        finally:
            self._lock.release()
        try:
            publisher.acknowledged(record, max(0.0, deadline - time.monotonic()))
        except PublishError as exc:
            with self._lock:
                self._renew(publisher)
            raise SinkUnavailable(str(exc)) from exc
        return {"event_id": event.event_id, "outcome": "queued"}

    def _renew(self, failed: Publisher) -> None:
        """A publisher that saw a failure refuses every later event (its failures are
        kept): start again with a new one, so one outage does not outlast itself. Only
        once per failed publisher (the requests waiting on it all come here)."""
        if self.publisher is not failed:
            return
        self.publisher = Publisher(
            failed.bootstrap_servers,
            failed.topics,
            failed.codec,
            auth=failed.auth,
            ack_timeout=failed.ack_timeout,
            **failed.config,
        )
        try:
            failed.close(timeout=0)  # fails what still waits on it: those requests answer 503
        except Exception as exc:  # noqa: BLE001 - the old producer is being dropped anyway
            log.warning("closing a failed publisher", error=str(exc)[:300])

    def close(self) -> None:
        self.publisher.close(timeout=self.publisher.ack_timeout)
