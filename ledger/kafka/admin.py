"""Admin requests (topic lookups, topic creation) that survive a broker that just died.

kafka-python sends an admin request to any broker it knows; one SIGKILLed seconds ago
stays in the cluster's metadata until the controller fences it (~9 s,
``broker.session.timeout.ms``), and a request sent there fails with a connection error (a
traceback from `ledger produce`, then `ledger create-topics`). ``with_admin`` asks again,
on a fresh client, for up to ``ADMIN_RETRY_S``; errors that are Kafka's answer (not a
lost connection) are raised at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

ADMIN_RETRY_S = 30.0  # how long an admin request is asked again while brokers do not answer
RETRY_PAUSE_S = 0.5


class KafkaUnreachable(RuntimeError):
    """No broker answered the admin request within ``ADMIN_RETRY_S``."""


def with_admin(
    bootstrap: str,
    auth: Mapping[str, Any],
    call: Callable[[Any], T],
    *,
    retry_s: float = ADMIN_RETRY_S,
) -> T:
    """``call(admin)`` on a new KafkaAdminClient, closed afterwards; asked again on a new
    client while the error is a lost or refused connection or a timeout (or another
    KafkaError that kafka-python marks retriable); raises KafkaUnreachable after ``retry_s``."""
    from kafka.admin import KafkaAdminClient  # lazily: CLI start-up stays fast
    from kafka.errors import KafkaError

    deadline = time.monotonic() + retry_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth)
            try:
                return call(admin)
            finally:
                admin.close()
        except KafkaError as exc:
            if not _connection_trouble(exc):
                raise
            if time.monotonic() > deadline:
                raise KafkaUnreachable(f"cannot connect to Kafka at {bootstrap}: {exc}") from exc
            time.sleep(RETRY_PAUSE_S)


def _connection_trouble(exc: BaseException) -> bool:
    """A failure that another try (another broker, a moment later) may not have."""
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        return True
    return bool(getattr(exc, "retriable", False))
