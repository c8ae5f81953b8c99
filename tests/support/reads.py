"""The read side (ledger/read) as the tests use it: by store, one snapshot per call, with
the rows as plain dicts where a test compares them with dicts."""

from __future__ import annotations

from typing import Any

from ledger.read import balances, operations
from ledger.read.models import JournalBalance, LoggedOutcome
from ledger.store.store import Store

SharerBalance = JournalBalance


def sharer_balances(
    store: Store, *, sharer_id: str | None = None, as_of: int | None = None
) -> list[JournalBalance]:
    with store.read() as conn:
        return balances.journal_balances(conn, sharer_id=sharer_id, as_of=as_of)


def account_balances(store: Store, as_of: int | None = None) -> dict[tuple[str, str], int]:
    with store.read() as conn:
        return balances.account_balances(conn, as_of)


def dead_letters(store: Store, limit: int = 1000) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [r.as_dict() for r in operations.dead_letters(conn, limit=limit).items]


def parked_events(store: Store, limit: int = 1000) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [r.as_dict() for r in operations.parked(conn, limit=limit).items]


def logged_outcome(store: Store, event_id: str) -> LoggedOutcome | None:
    with store.read() as conn:
        return operations.logged_outcome(conn, event_id)
