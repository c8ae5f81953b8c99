"""The one way views are kept caught up with the journal in a running process: a
``ViewFollower`` catches up on an interval, at once when woken (``wake``, after a write
elsewhere in the process), and on demand (``catch_up_now``, when the caller's next read
must see its own write). One catch-up at a time per follower; a failed pass is logged
and retried on the next tick.

``ledger serve`` runs one in the background; ``ledger project --follow`` runs one in the
foreground; the embedded sink asks it to catch up after each command."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ledger.logs import get_logger
from ledger.store.store import Store
from projectors import runner

log = get_logger("projectors.follower")


class ViewFollower:
    def __init__(
        self, store: Store, interval: float = 1.0, views: Sequence[str] | None = None
    ) -> None:
        self.store = store
        self.interval = interval
        self.views = list(views) if views is not None else None
        self._lock = threading.Lock()  # one catch-up at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def catch_up_now(self) -> runner.Outcome:
        """Catch up at once (waiting for a pass that is running) and return what it did."""
        with self._lock:
            return runner.catch_up(self.store, self.views)

    def wake(self) -> None:
        """Make the background loop run its next pass now, not at the end of the interval."""
        self._wake.set()

    def start(self) -> None:
        """Follow on a daemon thread until ``stop``."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="view-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def run(self, on_pass: Callable[[runner.Outcome], object] | None = None) -> None:
        """Follow in this thread until ``stop`` (from another thread or a signal)."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                outcome = self.catch_up_now()
            except Exception as exc:  # noqa: BLE001 - a failed pass is retried next tick
                log.error("views catch-up failed", error=str(exc)[:500])
            else:
                if on_pass is not None:
                    on_pass(outcome)
            self._wake.wait(self.interval)
