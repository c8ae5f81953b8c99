"""The one retry policy of the consumer: capped exponential backoff with jitter.

Used wherever the consumer waits out something that comes back by itself: a broker or
database that is down or restarting, a deadlock victim, topic metadata not there yet.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from ledger.logs import get_logger

log = get_logger("ledger.consumer")
T = TypeVar("T")


class Backoff:
    """Delays ``first``, doubling up to ``cap``, each with up to ``jitter`` of itself
    added (so restarted consumers do not retry in step)."""

    def __init__(self, first: float = 0.2, cap: float = 10.0, jitter: float = 0.25) -> None:
        self.first, self.cap, self.jitter = first, cap, jitter
        self.attempts = 0

    def next_delay(self) -> float:
        base = min(self.first * 2.0 ** min(self.attempts, 30), self.cap)
        self.attempts += 1
        return base + random.uniform(0, base * self.jitter)

    def reset(self) -> None:
        self.attempts = 0


def retry(
    action: Callable[[], T],
    *,
    on: tuple[type[BaseException], ...],
    what: str,
    wait: Callable[[float], object],
    stopping: Callable[[], bool],
    backoff: Backoff | None = None,
    attempts_when_stopping: int = 3,
    on_retry: Callable[[], object] | None = None,
    step: str | None = None,
) -> T:
    """``action()``, retried with backoff while it raises one of ``on``. Once ``stopping()``
    the error is raised after ``attempts_when_stopping`` tries, so a stop is never stuck.

    Each retry logs ``"{what}; retrying"``: one event name per kind of outage, whatever
    ``step`` of the work it interrupted (a field of its own), so one search finds them all."""
    backoff = backoff or Backoff()
    while True:
        try:
            return action()
        except on as exc:
            if stopping() and backoff.attempts >= attempts_when_stopping:
                raise
            delay = backoff.next_delay()
            log.warning(
                f"{what}; retrying",
                **({"step": step} if step else {}),
                attempt=backoff.attempts,
                retry_in_s=round(delay, 2),
                error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
            )
            if on_retry is not None:
                on_retry()
            wait(delay)
