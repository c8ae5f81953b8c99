"""``ledger ingest FILE.jsonl``: apply events from a JSON-lines file, in batches."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.commands.common import db_option, resolve_db
from ledger.domain.events import InvalidEvent
from ledger.ingest_file import ingest_file
from ledger.store.base import open_store


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@click.option("--batch-size", default=1000, show_default=True, help="events per transaction")
@click.option("--chain", default="ingest", show_default=True, help="hash chain to append to")
@click.pass_context
def ingest(ctx: click.Context, path: Path, db_url: str | None, batch_size: int, chain: str) -> None:
    """Apply the events of PATH (JSON form, one per line) to the ledger.

    Bad lines become dead letters with their reason, and never stop the lines after them.
    Running the same file again changes nothing (events are idempotent by event_id)."""
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    store = open_store(resolve_db(ctx, db_url))
    total = sum(1 for _ in path.open("rb"))
    with click.progressbar(length=total, label=f"ingesting {path.name}", file=sys.stderr) as bar:
        summary = ingest_file(store, path, batch_size=batch_size, chain=chain,
                              progress=bar.update)
    click.echo(
        f"{summary.received} events: {summary.applied} applied, {summary.rejected} rejected, "
        f"{summary.parked} parked, {summary.released} released from waiting, "
        f"{summary.duplicates} duplicates, {summary.undecodable} unreadable lines; "
        f"{summary.entries} journal entries written"
    )
    if summary.rejected or summary.undecodable:
        click.echo("see `ledger dead-letters` for the reasons", err=True)


__all__ = ["InvalidEvent", "ingest"]
