"""The composition root: the one place that turns settings into the running system's
parts. A command, the API server or a consumer asks for a ``System`` opened for what it
does (``Purpose``) and takes what it needs from it: the store, the service that applies
events, the views' follower, the sink the API's commands go to. Each part is built once
per process, on first use, and closed with the system.

Adapters (file ingest, the Kafka loop, the embedded sink) are handed their service;
they never build one."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING

from ledger.config import Settings
from ledger.service import LedgerService
from ledger.store.opening import open_store
from ledger.store.store import Store
from projectors.follower import ViewFollower

if TYPE_CHECKING:
    from ledger.api.sink import Sink


# The API's writes have their own admission lane (ledger/api/app.py WRITE_PLACES, 8): two
# connections each at most, on top of the reads' 15. Opened only when used.
SERVE_EXTRA_CONNECTIONS = 16


class Purpose(Enum):
    """What a process does with the ledger, which decides how its database is opened."""

    READ = "read"  # read commands: read-only transactions, never migrates or creates
    APPLY = "apply"  # consume, ingest: the service role; creates and migrates a new ledger
    SERVE = "serve"  # the API: the service role, an existing ledger
    MAINTAIN = "maintain"  # views, export, checkpoints: an existing ledger
    CREATE = "create"  # migrate, demo, replay: creates and migrates


@dataclass
class System:
    settings: Settings
    store: Store
    view_interval: float = 1.0  # seconds between the follower's catch-ups
    _closed: list[object] = field(default_factory=list, repr=False)

    @cached_property
    def service(self) -> LedgerService:
        return LedgerService(self.store)

    @cached_property
    def follower(self) -> ViewFollower:
        return ViewFollower(self.store, self.view_interval)

    def sink(self, *, kafka: bool) -> Sink:
        """Where the API's commands go: published to Kafka (the consumer applies them), or
        applied here at once with the views caught up after each one."""
        from ledger.api.sink import EmbeddedSink, KafkaSink

        made: Sink = (
            KafkaSink.for_settings(self.settings)
            if kafka
            else EmbeddedSink(self.service, self.follower)
        )
        self._closed.append(made)
        return made

    def close(self) -> None:
        for part in reversed(self._closed):
            part.close()  # type: ignore[attr-defined]
        self.store.dispose()


def open_system(
    settings: Settings, url: str, purpose: Purpose, *, allow_owner: bool = False
) -> System:
    """The system over the ledger at ``url``, opened for ``purpose``. ``allow_owner``: a
    service process may run as a role that owns the schema (warned about, not refused)."""
    return System(settings, open_for(url, purpose, allow_owner=allow_owner))


def open_for(url: str, purpose: Purpose, *, allow_owner: bool = False) -> Store:
    """The store at ``url`` opened as ``purpose`` needs (see ``Purpose``)."""
    if purpose is Purpose.READ:
        return open_store(url, read_only=True)
    if purpose is Purpose.APPLY:
        return open_store(url, check_role=service_role_check(allow_owner))
    if purpose is Purpose.SERVE:
        return open_store(
            url,
            create=False,
            check_role=service_role_check(allow_owner),
            max_overflow=10 + SERVE_EXTRA_CONNECTIONS,
        )
    if purpose is Purpose.MAINTAIN:
        return open_store(url, create=False)
    return open_store(url)


def service_role_check(allow_owner: bool) -> Callable[[Store], None]:
    """``open_store``'s check for the service commands (consume, ingest, serve): on
    PostgreSQL a role that could alter the schema or lift the append-only triggers is
    refused before anything is migrated, or with ``--allow-owner`` warned about loudly."""

    def check(store: Store) -> None:
        if store.backend != "postgresql":
            return  # SQLite has no roles: whoever can write the file owns it
        from ledger.logs import get_logger
        from ledger.store.errors import StoreError
        from ledger.store.roles import privileged_role

        with store.read() as conn:
            why = privileged_role(conn)
        if why is None:
            return
        if not allow_owner:
            raise StoreError(
                f"refusing to run the service as {why}: connect as the least-privileged "
                "service role (LEDGER_DB_URL; `ledger migrate --grant ROLE` sets it up, "
                "docs/operations.md), or pass --allow-owner"
            )
        get_logger("ledger.roles").warning("service running as a privileged role", role=why)
        sys.stderr.write(
            f"WARNING: running the service as {why} (--allow-owner): it could alter the "
            "schema or lift the journal's append-only triggers\n"
        )

    return check
