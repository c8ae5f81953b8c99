"""A whole ledger in memory: the reference model the database-backed service must match.

Used by unit and property tests and for quick experiments; production uses the service.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.events import Event
from ledger.domain.processor import Incoming, Result, process
from ledger.domain.state import WorkingState


class InMemoryLedger:
    def __init__(self, chain: str = "memory") -> None:
        self.state = WorkingState()
        self.chain = chain
        self.entries: list[JournalEntry] = []
        self.rejected: list[tuple[str, str, str]] = []  # (event_id, reason, message)
        self.results: list[Result] = []
        self._arrival = 0

    def ingest(self, events: Iterable[Event], source: str = "memory") -> list[Result]:
        batch = []
        for event in events:
            self._arrival += 1
            batch.append(Incoming(event, self._arrival, source, self.chain))
        results = process(batch, self.state)
        for result in results:
            outcome = result.outcome
            if isinstance(outcome, Applied):
                for entry in outcome.entries:
                    entry.check_balanced()
                self.entries.extend(outcome.entries)
            elif isinstance(outcome, Rejected):
                self.rejected.append(
                    (result.incoming.event.event_id, outcome.reason, outcome.message)
                )
        self.state.reset_changes()
        self.results.extend(results)
        return results

    def parked(self) -> list[str]:
        """Event ids still waiting."""
        waiting: dict[str, None] = {}
        for result in self.results:
            if isinstance(result.outcome, Parked):
                waiting[result.incoming.event.event_id] = None
            elif result.released:
                waiting.pop(result.incoming.event.event_id, None)
        return list(waiting)

    def balances(self) -> dict[tuple[str, str], int]:
        """(account, currency) -> sum of postings, zero balances left out."""
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for entry in self.entries:
            for posting in entry.postings:
                totals[(posting.account, posting.currency)] += posting.amount
        return {key: value for key, value in totals.items() if value != 0}

    def balance(self, account: str, currency: str) -> int:
        return self.balances().get((account, currency), 0)
