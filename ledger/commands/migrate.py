"""``ledger migrate``: bring a database to the latest schema revision, as its owner, and
grant a least-privilege service role what the service needs (ledger/store/roles.py)."""

from __future__ import annotations

import click

from ledger.commands.common import db_option, resolve_db
from ledger.store.opening import head_revision, open_store
from ledger.store.roles import grant_service


@click.command()
@db_option
@click.option(
    "--grant",
    "roles",
    multiple=True,
    metavar="ROLE",
    help="PostgreSQL role the service connects as: give it SELECT and INSERT, "
    "and UPDATE/DELETE only where state is mutable (repeatable)",
)
@click.pass_context
def migrate(ctx: click.Context, db_url: str | None, roles: tuple[str, ...]) -> None:
    """Migrate the database (connect as the schema's owner) and grant service roles."""
    store = open_store(resolve_db(ctx, db_url))
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
