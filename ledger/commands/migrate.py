"""``ledger migrate``: bring a database to the latest schema revision, as its owner, and
grant a least-privilege service role what the service needs (ledger/store/roles.py).

It connects to ``--db``, else ``LEDGER_MIGRATE_DB_URL`` (the owner's URL), else
``LEDGER_DB_URL``. Without ``--grant`` it grants the role of ``LEDGER_DB_URL`` (the
service's) when that URL names the same PostgreSQL database as another role."""

from __future__ import annotations

import click
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ledger.bootstrap import Purpose, open_for
from ledger.commands.common import resolve_db
from ledger.config import Settings
from ledger.store.opening import head_revision
from ledger.store.roles import grant_service


@click.command()
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help="SQLAlchemy URL of the database, as its owner "
    "(default: LEDGER_MIGRATE_DB_URL, else LEDGER_DB_URL, else ./ledger.sqlite)",
)
@click.option(
    "--grant",
    "roles",
    multiple=True,
    metavar="ROLE",
    help="PostgreSQL role the service connects as: give it SELECT and INSERT, "
    "and UPDATE/DELETE only where state is mutable (repeatable; default: the role "
    "of LEDGER_DB_URL when it is another role on the same database)",
)
@click.pass_context
def migrate(ctx: click.Context, db_url: str | None, roles: tuple[str, ...]) -> None:
    """Migrate the database (connect as the schema's owner) and grant service roles."""
    settings: Settings = ctx.obj
    if db_url is None and settings.migrate_db_url:
        db_url = settings.migrate_db_url
    url = resolve_db(ctx, db_url)
    roles = roles or _service_role(url, settings.db_url)
    store = open_for(url, Purpose.CREATE)
    try:
        if roles and store.backend != "postgresql":
            raise click.ClickException("--grant is for PostgreSQL roles; SQLite has none")
        with store.begin() as conn:
            for role in roles:
                grant_service(conn, role)
    finally:
        store.dispose()
    granted = f"; granted service privileges to {', '.join(roles)}" if roles else ""
    click.echo(f"schema at revision {head_revision()}{granted}")


def _service_role(owner_url: str, service_url: str) -> tuple[str, ...]:
    """The role of ``service_url`` when it is another role on ``owner_url``'s database."""
    try:
        owner, service = make_url(owner_url), make_url(service_url)
    except (ArgumentError, ValueError):  # a malformed URL: open_store reports it
        return ()
    if service.get_backend_name() != "postgresql" or not service.username:
        return ()
    if _where(owner) != _where(service) or owner.username == service.username:
        return ()
    return (service.username,)


def _where(url: URL) -> tuple[object, ...]:
    return (url.get_backend_name(), url.host or "localhost", url.port or 5432, url.database)
