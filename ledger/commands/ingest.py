"""``ledger ingest FILE.jsonl``: apply events from a JSON-lines file (or ``-``, stdin)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

import click

from ledger.bootstrap import Purpose, open_system
from ledger.commands.common import allow_owner_option, db_option, printable_id, resolve_db
from ledger.domain.events import InvalidEvent
from ledger.ingest_file import IngestSummary, InputError, ingest_stream, source_name
from ledger.runtime import tune_gc_for_throughput
from ledger.service import LedgerService


@click.command()
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@db_option
@allow_owner_option
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="events per transaction",
)
@click.option(
    "--chain",
    default="ingest",
    show_default=True,
    callback=printable_id,
    help="hash chain to append to",
)
@click.pass_context
def ingest(
    ctx: click.Context,
    path: Path,
    db_url: str | None,
    allow_owner: bool,
    batch_size: int,
    chain: str,
) -> None:
    """Apply the events of PATH (JSON form, one per line, UTF-8; `-` reads stdin).

    Bad lines become dead letters with their reason, and never stop the lines after them.
    Running the same file again changes nothing (events are idempotent by event_id, dead
    letters by source and content). Exits 1 if no line could be read as an event."""
    tune_gc_for_throughput()
    system = open_system(ctx.obj, resolve_db(ctx, db_url), Purpose.APPLY, allow_owner=allow_owner)
    name = "<stdin>" if str(path) == "-" else path.name
    with _open(path) as stream:
        try:
            summary = _run(system.service, stream, name, batch_size, chain)
        except InputError as exc:
            raise click.ClickException(str(exc)) from exc
    report = summary.report
    click.echo(
        f"{report.received} events: {report.applied} applied, {report.rejected} rejected, "
        f"{report.parked} parked, {report.released} released from waiting, "
        f"{report.duplicates} duplicates, {report.undecodable} unreadable lines; "
        f"{report.entries} journal entries written"
    )
    if summary.lines and summary.unreadable == summary.lines:
        raise click.ClickException(
            f"none of the {summary.lines} lines of {source_name(name)} could be read as an "
            "event (JSON lines, UTF-8, docs/events.md); see `ledger dead-letters`"
        )
    if report.rejected or report.undecodable:
        click.echo("see `ledger dead-letters` for the reasons", err=True)


def _open(path: Path) -> BinaryIO:
    if str(path) == "-":
        return click.open_file("-", "rb")  # type: ignore[return-value]
    return path.open("rb")


def _run(
    service: LedgerService, stream: BinaryIO, name: str, batch_size: int, chain: str
) -> IngestSummary:
    """Ingest with a progress bar over the bytes of a regular file; a pipe's length is
    unknown (and reading it twice would consume it), so it gets none."""
    try:
        size = _regular_size(stream)
    except OSError:
        size = None
    if size is None:
        return ingest_stream(service, stream, name, batch_size=batch_size, chain=chain)
    with click.progressbar(
        length=size, label=f"ingesting {source_name(name)}", file=sys.stderr
    ) as bar:
        return ingest_stream(
            service, stream, name, batch_size=batch_size, chain=chain, progress=bar.update
        )


def _regular_size(stream: BinaryIO) -> int | None:
    """The size of a regular file, None for a pipe, a terminal or a device."""
    info = os.fstat(stream.fileno())
    return info.st_size if stat.S_ISREG(info.st_mode) else None


__all__ = ["InvalidEvent", "ingest"]
