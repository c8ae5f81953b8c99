"""Opening a store: connecting to a URL, checking the schema revision, migrating.

``open_store(url)`` builds the engine for the URL's backend, brings the schema to the
latest Alembic revision (or, read-only, checks that it is there) and returns a Store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError

from ledger.store.backend import Backend
from ledger.store.errors import StoreError, database_hint
from ledger.store.postgres import PostgresBackend
from ledger.store.sqlite import COUNTERS_TABLE, SqliteBackend, existing_file_url
from ledger.store.store import Store

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
NO_LEDGER_HINT = "check --db, or run `ledger migrate --db URL` to make a new ledger there"
_BACKENDS: dict[str, Backend] = {
    backend.name: backend for backend in (PostgresBackend(), SqliteBackend())
}


def open_store(
    url: str,
    *,
    migrate: bool = True,
    read_only: bool = False,
    create: bool = True,
    check_role: Callable[[Store], None] | None = None,
    max_overflow: int = 10,
) -> Store:
    """Connect to ``url`` (``postgresql+psycopg2://…`` or ``sqlite:///path``) and, unless
    ``migrate`` is False, bring the schema to the latest revision (safe to run from
    several processes at once). Raises StoreError for an unsupported URL.

    ``create`` False (the commands that work on an existing ledger: export, checkpoint
    sign, serve, the views): the database must already hold a ledger, at any revision;
    else StoreError names it and says what to do, and nothing is created (no SQLite file,
    no table). Only the commands that make a ledger (migrate, ingest, consume, replay,
    demo) create one, so a mistyped --db cannot become a new empty ledger.

    ``read_only`` (the read commands): never migrates, never creates a file, and every
    transaction is read-only; the database must already hold a ledger at the latest
    revision, else StoreError says what is missing.

    ``check_role`` (the service commands) sees the store before anything is migrated and
    may raise StoreError (a role with more privilege than the service's, say).

    ``max_overflow``: connections the pool may open beyond its 5 (the API's admission
    lanes are sized from it, ledger/api/app.py)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise StoreError(f"not a database URL: {url!r} ({exc})") from exc
    name = parsed.get_backend_name()
    specifics = _BACKENDS.get(name)
    if specifics is None:
        raise StoreError(f"unsupported database {name!r}: use postgresql or sqlite")
    try:
        if not (create or read_only):
            require_ledger(Store(specifics.make_engine(parsed, read_only=True), specifics, url))
            if name == "sqlite":  # opened read-write, never created if it vanished meanwhile
                parsed = existing_file_url(parsed)
        elif not read_only and name == "sqlite" and Path(parsed.database or "").is_file():
            refuse_foreign(Store(specifics.make_engine(parsed, read_only=True), specifics, url))
        engine = specifics.make_engine(parsed, read_only=read_only, max_overflow=max_overflow)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    store = Store(engine, specifics, url)
    if check_role is not None:
        try:
            check_role(store)
        except BaseException:
            store.dispose()
            raise
    if read_only:
        try:
            check_schema(store)
        except BaseException:
            store.dispose()
            raise
    elif migrate and current_revision(store) != head_revision():
        try:
            run_migrations(store)
        except ProgrammingError as exc:  # e.g. a least-privilege role: permission denied
            store.dispose()
            raise StoreError(
                f"the database is not at schema revision {head_revision()} and this role "
                f"cannot migrate it ({_first_line(exc)}): run `ledger migrate --db OWNER_URL`"
            ) from exc
    return store


def require_ledger(probe: Store) -> None:
    """StoreError unless the database behind ``probe`` (a read-only store, disposed here)
    holds a ledger schema at some revision."""
    where = make_url(probe.url).render_as_string(hide_password=True)
    try:
        revision = current_revision(probe)
    except (OperationalError, ProgrammingError, DatabaseError) as exc:
        raise StoreError(
            f"cannot read a ledger from {where}: {_first_line(exc)} "
            f"({database_hint(probe.backend)})"
        ) from exc
    finally:
        probe.dispose()
    if revision is None:
        raise StoreError(f"no ledger in {where}: it has no ledger tables ({NO_LEDGER_HINT})")


def refuse_foreign(probe: Store) -> None:
    """StoreError if the SQLite file behind ``probe`` (read-only, disposed here) is another
    program's database (tables, none of them a ledger's): a mistyped --db of a command that
    makes a ledger must not add ledger tables to it. An empty file, a ledger at any
    revision and a ledger downgraded to nothing (its alembic_version remains) are fine."""
    where = make_url(probe.url).render_as_string(hide_password=True)
    try:
        with probe.engine.connect() as conn:
            names = inspect(conn).get_table_names()
            conn.rollback()
    except (OperationalError, ProgrammingError, DatabaseError) as exc:
        raise StoreError(
            f"cannot use {where}: {_first_line(exc)} ({database_hint(probe.backend)})"
        ) from exc
    finally:
        probe.dispose()
    if names and "alembic_version" not in names:
        shown = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
        raise StoreError(
            f"{where} is a database without a ledger (tables {shown}): not turned into "
            "one; check --db, or name a new file"
        )


def current_revision(store: Store) -> str | None:
    """The database's Alembic revision, None when it has no ledger schema yet."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        revision = context.get_current_revision()
        conn.rollback()
    return revision


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def check_schema(store: Store) -> None:
    """StoreError unless the database holds a ledger schema at the latest revision."""
    where = make_url(store.url).render_as_string(hide_password=True)
    try:
        with store.read() as conn:
            version = (
                conn.execute(select(text("version_num")).select_from(text("alembic_version")))
                .scalars()
                .all()
            )
    except (OperationalError, ProgrammingError, DatabaseError) as exc:
        first = _first_line(exc)
        if "alembic_version" in first:
            raise StoreError(
                f"no ledger in {where}: it has no ledger tables ({NO_LEDGER_HINT})"
            ) from exc
        raise StoreError(
            f"cannot read a ledger from {where}: {first} ({database_hint(store.backend)})"
        ) from exc
    head = head_revision()
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    unknown = [v for v in version if v not in known]
    if unknown:
        raise StoreError(
            f"the ledger in {where} is at schema revision {', '.join(map(str, unknown))}, "
            f"unknown to this program (it reads {head}): was it written by a newer version?"
        )
    if version != [head]:
        found = ", ".join(map(str, version)) or "none"
        raise StoreError(
            f"the ledger in {where} is at schema revision {found}, this program reads {head}: "
            "run `ledger migrate` first"
        )


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: tables kept outside tables.metadata on purpose are not schema drift."""
    return not (type_ == "table" and name == COUNTERS_TABLE)


def run_migrations(store: Store, revision: str = "head") -> None:
    """Upgrade to ``revision`` in one transaction, serialised against other migrators."""
    config = alembic_config()
    with migration_transaction(store) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


@contextmanager
def migration_transaction(store: Store) -> Iterator[Connection]:
    """A write transaction holding the migration lock: one migrator at a time."""
    with store.begin() as conn:
        store.specifics.lock_for_migration(conn)
        yield conn
