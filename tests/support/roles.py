"""The database URLs of the least-privilege roles (the ``pg_roles`` fixture), and the test
admin's URL of a scratch database (to tamper with what the service role cannot touch)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class PgRoles:
    admin: str  # the test admin (ledger_test_admin): member of the owner, tampers
    owner: str  # ledger_owner: migrations
    service: str  # ledger_service: the running service


def as_admin(url: str) -> str:
    """``url``'s database as the test admin (``LEDGER_TEST_PG_URL``'s role): a member of
    the owner role that may also set ``session_replication_role``; not a superuser.
    A SQLite URL is returned as it is (whoever writes the file may do anything)."""
    return _as_role(url, "LEDGER_TEST_PG_URL")


def as_owner(url: str) -> str:
    """``url``'s database as its owner (``LEDGER_TEST_PG_OWNER_URL``'s role), who runs
    the migrations; a SQLite URL as it is."""
    return _as_role(url, "LEDGER_TEST_PG_OWNER_URL")


def _as_role(url: str, env: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    role = make_url(os.environ[env])
    return role.set(database=parsed.database).render_as_string(hide_password=False)
