"""A batch of incoming events through the rules: idempotency, validation, parking.

Pure. The service wraps it in one database transaction; the in-memory ledger calls it
directly. Each incoming event yields one ``Result``; releasing a parked event yields a
further ``Result`` flagged ``released`` right after the event that released it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.domain import engine
from ledger.domain.engine import Applied, Outcome, Parked, Rejected
from ledger.domain.events import Event
from ledger.domain.model import ParkedEvent
from ledger.domain.reasons import Reason
from ledger.domain.state import WorkingState
from ledger.domain.validation import problem, valid_event_id


@dataclass(frozen=True, slots=True)
class Incoming:
    event: Event
    arrival: int  # the ledger's arrival number (events.seq)
    source: str  # where it came from: "topic/partition@offset", "file:line"
    chain: str  # the hash chain its entries join (one per writer partition)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The event id was seen before: no effect, whatever the content."""


@dataclass(frozen=True, slots=True)
class Result:
    incoming: Incoming
    outcome: Outcome | Duplicate
    released: bool = False  # applied now because what it waited for arrived


def process(batch: Iterable[Incoming], state: WorkingState) -> list[Result]:
    """Run every incoming event in order; parked events run as soon as they can."""
    results: list[Result] = []
    for incoming in batch:
        event_id = incoming.event.event_id
        if not valid_event_id(event_id):  # cannot be deduplicated, so never recorded as seen
            bad = problem(incoming.event) or (Reason.INVALID_VALUE, "event_id is not usable")
            results.append(Result(incoming, Rejected(*bad)))
            continue
        if state.is_processed(event_id):
            results.append(Result(incoming, Duplicate()))
            continue
        state.mark_processed(event_id)
        pending = deque([(incoming, False)])
        while pending:
            current, released = pending.popleft()
            outcome = _decide(current, state)
            results.append(Result(current, outcome, released))
            if isinstance(outcome, Parked):
                state.park(
                    ParkedEvent(current.event, current.arrival, current.source, outcome.waits_for)
                )
            for ref in outcome.creates:
                for parked in state.release(ref):
                    # a released event's entries join the chain of the event that freed it
                    freed = Incoming(parked.event, parked.arrival, parked.source, current.chain)
                    pending.append((freed, True))
    return results


def _decide(incoming: Incoming, state: WorkingState) -> Outcome:
    bad = problem(incoming.event)
    if bad is not None:
        return Rejected(*bad, creates=engine.remember_malformed(incoming.event, state))
    return engine.apply(incoming.event, incoming.arrival, state)


__all__ = ["Applied", "Duplicate", "Incoming", "Parked", "Rejected", "Result", "process"]
