"""A dead letter: a record the ledger kept instead of applying it, because the rules
rejected it or it never became an event. Plain value; the SQL is in ledger/store/batch.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter, as the service hands it to the store and the store reports it
    committed (then with its ``id``, and its text as stored)."""

    source: str  # "topic/partition@offset" or "file.jsonl:line"
    reason: str
    message: str
    payload: str  # the event's JSON form, or the raw record (JSON text or hex)
    recorded_at: int
    event_id: str | None = None
    event_type: str | None = None
    undecodable: bool = False  # never became an event: counted apart from rejections
    id: int | None = None  # given when stored
