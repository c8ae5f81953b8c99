"""What the store raises, and what to tell a user whose database cannot be used."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

# The database is down, restarting, or chose this transaction as a deadlock victim: retry
# the whole batch later. Any other database error is the batch's own fault.
UNAVAILABLE = (OperationalError, InterfaceError)

# A unique key refused a row: in a batch written on optimistic assumptions (ids taken as
# new without a query), the sign that one was not new after all.
DUPLICATE_KEY = IntegrityError


class StoreError(ValueError):
    """A store was asked for something it cannot do; the message says what."""


def database_hint(backend: str) -> str:
    """What to check when a database cannot be used, for its backend."""
    if backend == "sqlite":
        return "is the file a ledger SQLite database, readable and writable?"
    return "is the URL right and the server up? deploy/postgres/start.sh starts the project's own"
