"""``ledger export`` (history to an Avro OCF) and ``ledger replay`` (OCF into a new ledger)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger import export as history
from ledger.commands.common import db_option, resolve_db
from ledger.store.base import open_store


@click.command()
@db_option
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def export(ctx: click.Context, db_url: str | None, out: Path) -> None:
    """Write the whole event history (applied, rejected, parked, in ledger order) with its
    schemas and chain heads to OUT, an Avro object container file."""
    store = open_store(resolve_db(ctx, db_url))
    report = history.export(store, out)
    click.echo(f"exported {report.events} events and {report.dead_letters} other dead letters "
               f"to {out}")
    click.echo(f"ledger head {report.head}")


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1))
@click.pass_context
def replay(ctx: click.Context, source: Path, db_url: str | None, batch_size: int) -> None:
    """Rebuild a ledger from SOURCE (a file from `ledger export`) into the empty database
    --db, then print both ledger heads; exit 1 unless they are equal."""
    store = open_store(resolve_db(ctx, db_url))
    try:
        with click.progressbar(length=0, label="replaying", file=sys.stderr) as bar:
            report = history.replay(source, store, batch_size=batch_size, progress=bar.update)
    except history.ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"replayed {report.records} records")
    click.echo(f"source head   {report.source_head}")
    click.echo(f"replayed head {report.replayed_head}")
    if not report.verified:
        click.echo("the replayed ledger does not verify", err=True)
    if not report.equal:
        click.echo("the heads differ", err=True)
    sys.exit(0 if report.equal and report.verified else 1)
