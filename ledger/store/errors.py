"""What the store raises, and what to tell a user whose database cannot be used."""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError

# The database is down, restarting, or chose this transaction as a deadlock victim: retry
# the whole batch later. Any other database error is the batch's own fault.
UNAVAILABLE = (OperationalError, InterfaceError)


class StoreError(ValueError):
    """A store was asked for something it cannot do; the message says what."""


def database_hint(backend: str) -> str:
    """What to check when a database cannot be used, for its backend."""
    if backend == "sqlite":
        return "is the file a ledger SQLite database, readable and writable?"
    return "is the URL right and the server up? deploy/postgres/start.sh starts the project's own"
