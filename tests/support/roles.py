"""The database URLs of the least-privilege roles (the ``pg_roles`` fixture)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PgRoles:
    admin: str  # the database's owner connection as the cluster's admin
    owner: str  # ledger_owner: migrations
    service: str  # ledger_service: the running service
