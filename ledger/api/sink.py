"""Where the API's events go: the embedded ledger (LedgerService on the store) or Kafka.

Finance commands and published events become events on the same path as everything else:
through Kafka when the server was started with it (answer: queued), else applied here at
once in one transaction (answer: the outcome, with the rejection reason if any)."""

from __future__ import annotations

import threading
from typing import Protocol

from ledger.config import Settings
from ledger.domain.events import Event
from ledger.kafka.publisher import Publisher, PublishError
from ledger.logs import get_logger
from ledger.service import LedgerService, Received
from projectors.follower import ViewFollower

log = get_logger("ledger.api.sink")


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
    """Publishes each event (acknowledged before answering); the consumer applies it."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._lock = threading.Lock()  # the Publisher expects one caller at a time

    @classmethod
    def for_settings(cls, settings: Settings) -> KafkaSink:
        """The sink of `ledger serve --kafka`: buyer activity goes out as the publisher
        principal, barrier events (the accounts topic) as finance (ledger/kafka/auth.py);
        the role table (ledger/domain/permissions.py) has already decided what each API
        token may submit. Raises ConfigError for missing credentials."""
        from ledger.kafka.auth import publisher_options
        from ledger.kafka.publisher import Publisher

        auth = publisher_options(settings)
        return cls(Publisher(settings.kafka_bootstrap, settings.topics, auth=auth))

    def submit(self, event: Event, source: str) -> dict[str, str | None]:
        with self._lock:
            try:
                self.publisher.publish(event)
                self.publisher.flush()
            except PublishError as exc:
                self._renew()
                raise SinkUnavailable(str(exc)) from exc
        return {"event_id": event.event_id, "outcome": "queued"}

    def _renew(self) -> None:
        """A publisher that saw a failure refuses every later event (its failures are
        kept): start again with a new one, so one outage does not outlast itself."""
        old = self.publisher
        try:
            old.close(timeout=0)
        except Exception as exc:  # noqa: BLE001 - the old producer is being dropped anyway
            log.warning("closing a failed publisher", error=str(exc)[:300])
        self.publisher = Publisher(
            old.bootstrap_servers, old.topics, old.codec, auth=old.auth, **old.config
        )

    def close(self) -> None:
        self.publisher.close()
