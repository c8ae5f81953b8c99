"""Mirror dead letters to a Kafka topic, for services that watch rejections there.

The database's ``dead_letters`` table is the record; this is a copy sent after the batch
committed, best effort: a failure to publish is logged and counted, never retried into
the ledger. Each record's value is the dead letter as JSON (reason, message, source,
event id and type, payload), its key the event id (or the source when there is none),
and its ``reason`` header the reason code.
"""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaProducer

from ledger.dead_letters import DeadLetter
from ledger.logs import get_logger

log = get_logger("ledger.dead_letters")
FIELDS = ("id", "event_id", "event_type", "source", "reason", "message", "payload", "recorded_at")


class DeadLetterTopic:
    def __init__(self, bootstrap_servers: str, topic: str, **auth: Any) -> None:
        """``auth``: the consumer principal's SASL settings (ledger/kafka/auth.py)."""
        self.topic = topic
        self.failures = 0
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", linger_ms=20, **auth
        )

    def __call__(self, dead_letters: list[DeadLetter]) -> None:
        for dead in dead_letters:
            value = json.dumps({name: getattr(dead, name) for name in FIELDS}, sort_keys=True)
            key = dead.event_id or dead.source
            try:
                future = self._producer.send(
                    self.topic,
                    key=key.encode(),
                    value=value.encode(),
                    headers=[("reason", dead.reason.encode())],
                )
                future.add_errback(self._failed, dead)
            except Exception as exc:  # noqa: BLE001 - a mirror never stops the ledger
                self._failed(exc, dead)

    def _failed(self, exc: BaseException, dead: DeadLetter) -> None:
        self.failures += 1
        log.warning(
            "dead letter not mirrored to its topic (it is in the database)",
            topic=self.topic,
            dead_letter=dead.id,
            error=str(exc)[:300],
        )

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._producer.close(timeout)
