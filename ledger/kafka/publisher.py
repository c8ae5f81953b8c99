"""Publish events to Kafka: validated, Avro single-object encoded, keyed by ordering key.

A thin wrapper over kafka-python's idempotent producer (acks=all, enable_idempotence, at
most 5 requests in flight), so records of one key reach their partition exactly once and
in ``publish`` order. ``publish`` is asynchronous (it returns the record's future);
``flush`` waits for every record sent so far and raises ``PublishError`` if any failed;
``acknowledged`` waits for one record. The producer is created on first publish: the
constructor does no I/O.

Every wait for an acknowledgement has a deadline, ``ack_timeout`` seconds (default
``DEFAULT_ACK_TIMEOUT_S``; ``LEDGER_KAFKA_ACK_TIMEOUT``): with fewer in-sync replicas than
``min.insync.replicas`` no write is acknowledged, and kafka-python 3.0.12 did not expire
such records after its ``delivery_timeout_ms`` (docs/operations.md), so without our own
deadline a publisher waited for ever. ``ack_timeout=None`` keeps that wait (the
consumer's marker repair: it cannot move on without them, so it waits for the brokers).

Barriers (docs/ordering.md): after barrier events (the accounts topic), before the next
buyer event and at ``flush``, the publisher waits for the last barrier's offset and sends
a marker carrying it to every orders partition. The same producer sends the buyer events
after it, so each buyer event lands before or after each barrier exactly as published.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from ledger.config import Topics
from ledger.domain.events import Event
from ledger.kafka.topics import marker_headers, record_key, topic_for
from ledger.logs import get_logger
from schemas.codec import Codec, EncodeError, default_codec

log = get_logger(__name__)

# Throughput-oriented defaults (docs/platform.md: ~30k records/s with these on this machine kind).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "max_in_flight_requests_per_connection": 5,
    "linger_ms": 20,
    "batch_size": 512 * 1024,
    "max_block_ms": 30_000,
    "client_id": "ledger-publisher",
}


DEFAULT_ACK_TIMEOUT_S = 30.0  # seconds to wait for Kafka to acknowledge a record


class PublishError(RuntimeError):
    """An event could not be published. ``event_id`` names it (None if not event-specific)."""

    def __init__(self, event_id: str | None, message: str) -> None:
        super().__init__(f"event {event_id!r}: {message}" if event_id else message)
        self.event_id = event_id
        self.message = message


class UnpublishableEvent(PublishError):
    """The event itself cannot be published (it does not fit its schema or any topic):
    nothing is wrong with Kafka or the producer."""


class Publisher:
    """Publishes events to the topics named by ``topics`` on ``bootstrap_servers``.

    ``producer_overrides`` are passed to ``kafka.KafkaProducer`` on top of
    ``PRODUCER_DEFAULTS``; ``auth`` adds, per topic kind ("orders", "accounts"), the SASL
    settings of the principal that writes it (ledger/kafka/auth.py): with two principals
    there are two producers, and the barrier markers go with the orders topic's. Not
    thread-safe for concurrent ``publish`` calls on one instance
    (kafka-python's producer is, but the failure bookkeeping assumes one caller).
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topics: Topics | None = None,
        codec: Codec | None = None,
        *,
        auth: Mapping[str, Mapping[str, Any]] | None = None,
        ack_timeout: float | None = DEFAULT_ACK_TIMEOUT_S,
        **producer_overrides: Any,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.ack_timeout = ack_timeout
        self.topics = topics if topics is not None else Topics()
        self.codec = codec if codec is not None else default_codec()
        self.config = {**PRODUCER_DEFAULTS, **producer_overrides}
        self.auth = {kind: dict(options) for kind, options in (auth or {}).items()}
        self._configs = {
            kind: {**self.config, **self.auth.get(kind, {})} for kind in ("orders", "accounts")
        }
        # one producer when both topics are written as the same principal
        self._shared = self._configs["orders"] == self._configs["accounts"]
        self._producers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._failures: list[tuple[str, BaseException]] = []
        self.sent = 0
        self.acked = 0
        self.markers = 0
        self._barrier: Any = None  # the send future of the last barrier not yet marked

    def _ensure_producer(self, event_id: str | None, kind: str = "orders") -> Any:
        """The producer that writes the ``kind`` topic ("orders" or "accounts")."""
        key = "orders" if self._shared else kind
        if key not in self._producers:
            from kafka import KafkaProducer  # imported lazily: CLI start-up stays fast

            try:
                self._producers[key] = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers, **self._configs[key]
                )
            except Exception as exc:  # NoBrokersAvailable, configuration errors, ...
                raise PublishError(
                    event_id, f"cannot connect to Kafka at {self.bootstrap_servers}: {exc}"
                ) from exc
        return self._producers[key]

    def _on_success(self, _metadata: Any) -> None:
        with self._lock:
            self.acked += 1

    def _on_failure(self, event_id: str, exc: BaseException) -> None:
        with self._lock:
            self._failures.append((event_id, exc))
        log.error("publish_failed", event_id=event_id, error=str(exc))

    def _raise_failure(self) -> None:
        with self._lock:
            if not self._failures:
                return
            event_id, exc = self._failures[0]
            count = len(self._failures)
        more = f" (and {count - 1} more)" if count > 1 else ""
        raise PublishError(event_id, f"not delivered: {exc}{more}")

    def publish(self, event: Event) -> Any:
        """Validate, encode and send ``event`` (asynchronously); its record's future (for
        ``acknowledged``).

        Raises ``PublishError`` if the event does not fit its schema, the producer cannot
        be created or the send is refused, or an earlier record already failed (or a
        barrier before it was not acknowledged within ``ack_timeout``).
        """
        self._raise_failure()
        try:
            value = self.codec.encode(event)
            topic = topic_for(event, self.topics)  # a redrive goes to accounts
        except (EncodeError, ValueError) as exc:
            raise UnpublishableEvent(getattr(event, "event_id", None), str(exc)) from exc
        kind = "accounts" if topic == self.topics.accounts else "orders"
        producer = self._ensure_producer(event.event_id, kind)
        if topic == self.topics.orders and self._barrier is not None:
            self._mark_barrier(self.ack_timeout)
        try:
            future = producer.send(topic, value=value, key=record_key(event))
        except Exception as exc:  # KafkaTimeoutError (metadata), buffer full, closed producer
            raise PublishError(event.event_id, f"send to {topic} failed: {exc}") from exc
        self.sent += 1
        future.add_callback(self._on_success)
        future.add_errback(lambda exc, eid=event.event_id: self._on_failure(eid, exc))
        if topic == self.topics.accounts:
            self._barrier = (event.event_id, future)
        return future

    @property
    def barrier_pending(self) -> bool:
        """A barrier was published whose markers are not sent yet (``flush`` sends them)."""
        return self._barrier is not None

    def acknowledged(self, record: Any, timeout: float | None = None) -> None:
        """Wait for ``record`` (a future from ``publish``) to be acknowledged, at most
        ``timeout`` seconds (default ``ack_timeout``); raises ``PublishError``. Other
        threads may publish and wait meanwhile: their records share the producer's
        requests (that is the API's group commit, ledger/api/sink.py)."""
        wait = self.ack_timeout if timeout is None else timeout
        try:
            record.get(timeout=wait)
        except Exception as exc:  # KafkaTimeoutError (our deadline), or the send failed
            within = "" if wait is None else f" within {wait:.1f} s"
            name = type(exc).__name__
            reason = name if "Timeout" in name else f"{name}: {exc}"  # the timeout: said
            raise PublishError(None, f"not acknowledged{within} ({reason})") from exc

    def _mark_barrier(self, timeout: float | None) -> None:
        """Wait for the last barrier's offset, then mark every orders partition with it."""
        event_id, future = self._barrier
        try:
            # send now: do not wait out linger_ms
            self._ensure_producer(event_id, "accounts").flush(timeout=timeout)
            offset = future.get(timeout=timeout).offset
        except Exception as exc:  # the barrier itself failed: nothing may follow it
            raise PublishError(event_id, f"barrier not delivered: {exc}") from exc
        self._barrier = None
        self.seal(offset)

    def seal(self, barrier_offset: int, partitions: list[int] | None = None) -> None:
        """Send a marker for ``barrier_offset`` (every accounts record up to it) to the
        given orders partitions (default: all). Also the repair for a publisher that died
        between a barrier and its markers: markers are idempotent, the first one >= a
        barrier in a partition is its cut there."""
        producer = self._ensure_producer(None)
        targets = (
            sorted(producer.partitions_for(self.topics.orders))
            if partitions is None
            else partitions
        )
        for partition in targets:
            try:
                future = producer.send(
                    self.topics.orders,
                    value=b"",
                    partition=partition,
                    headers=marker_headers(barrier_offset),
                )
            except Exception as exc:
                raise PublishError(
                    None, f"marker to {self.topics.orders}/{partition} failed: {exc}"
                ) from exc
            future.add_errback(lambda exc, p=partition: self._on_failure(f"marker/{p}", exc))
            self.markers += 1

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record sent so far (and the markers of the last barriers) is
        acknowledged, at most ``timeout`` seconds (default ``ack_timeout``) for each wait;
        raises ``PublishError``."""
        timeout = self.ack_timeout if timeout is None else timeout
        if self._barrier is not None:
            self._mark_barrier(timeout)
        for producer in list(self._producers.values()):
            try:
                producer.flush(timeout=timeout)
            except Exception as exc:  # KafkaTimeoutError
                raise PublishError(None, f"flush did not complete: {exc}") from exc
        self._raise_failure()

    def close(self, timeout: float | None = None) -> None:
        """Flush what can be flushed and release the producer. Idempotent. Records still
        unacknowledged after ``timeout`` seconds are abandoned: their futures fail, so no
        one waiting for them is left hanging."""
        producers, self._producers = self._producers, {}
        for producer in producers.values():
            _close(producer, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.flush()
            finally:
                self.close()
        else:
            self.close(timeout=0)


def _close(producer: Any, timeout: float | None) -> None:
    """``producer.close(timeout)``, and a forced close when records are still pending at
    the timeout: kafka-python's close flushes first and, when that times out, raises
    before it force-closes, leaving the sender thread and the waiting futures alive."""
    from kafka.errors import KafkaTimeoutError

    try:
        producer.close(timeout=timeout)
    except KafkaTimeoutError:
        sender = producer._sender  # no public way to abandon the pending records
        sender.force_close()  # fails every incomplete batch's future
        sender.join(5.0)
        try:
            producer.close(timeout=0)
        except KafkaTimeoutError as exc:
            log.warning("kafka producer not closed", error=str(exc)[:300])
