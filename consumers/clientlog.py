"""Forward the Kafka client's own warnings and errors into the structured log.

kafka-python logs through the standard library, which ``ledger.logs`` does not configure,
so without this a broker outage (connections lost, reconnect attempts with backoff, the
group coordinator marked dead) is silent in the consumer's JSON log: the client retries
internally and ``poll`` just returns nothing. With it, each such record becomes one
``kafka client`` log event naming the client logger and its message.
"""

from __future__ import annotations

import logging

from ledger.logs import get_logger

MAX_MESSAGE = 500


class _ToStructlog(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.log = get_logger("ledger.kafka_client")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            method = self.log.error if record.levelno >= logging.ERROR else self.log.warning
            method("kafka client", logger=record.name, message=record.getMessage()[:MAX_MESSAGE])
        except Exception:  # noqa: BLE001 - logging must never break the consumer
            self.handleError(record)


def forward_kafka_client_logs(level: int = logging.WARNING) -> None:
    """Idempotent: route records of the ``kafka`` loggers at ``level`` and above to our log."""
    logger = logging.getLogger("kafka")
    if not any(isinstance(h, _ToStructlog) for h in logger.handlers):
        logger.addHandler(_ToStructlog(level))
    logger.setLevel(level)
    logger.propagate = False  # not also printed raw by logging's last-resort handler
