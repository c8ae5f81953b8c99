"""View commands: ``ledger project`` (catch up), ``ledger rebuild [VIEW]``, ``ledger check``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ledger.bootstrap import Purpose, open_for

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

from ledger.commands.common import db_option, echo_json, resolve_db
from projectors import catalog, runner
from projectors.catalog import UnknownView
from projectors.check import check as check_views
from projectors.follower import ViewFollower

VIEW_HELP = f"one of: {', '.join(catalog.PROJECTORS)} (default: all)"


@contextmanager
def _bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback drawing one click progress bar per view, on stderr."""
    bars: list[ProgressBar[int]] = []  # the one bar, once the first progress shows
    at = 0

    def progress(done: int, total: int) -> None:
        nonlocal at
        if not bars:
            bar = click.progressbar(
                length=max(total, 1), label=label, file=sys.stderr, show_pos=True
            )
            bar.__enter__()
            bars.append(bar)
        bars[0].update(done - at)
        at = done

    try:
        yield progress
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)


def _views(view: str | None) -> list[str]:
    try:
        return [p.name for p in catalog.select(view)]
    except UnknownView as exc:
        raise click.BadParameter(str(exc), param_hint="VIEW") from exc


@click.command()
@click.argument("view", required=False)
@db_option
@click.pass_context
def rebuild(ctx: click.Context, view: str | None, db_url: str | None) -> None:
    """Drop VIEW (every view when omitted) and replay the journal into it."""
    store = open_for(resolve_db(ctx, db_url), Purpose.MAINTAIN)
    for name in _views(view):
        started = time.perf_counter()
        with _bar(f"rebuilding {name}") as progress:
            outcome = runner.rebuild(store, name, progress=progress)
        seconds = time.perf_counter() - started
        click.echo(f"{name}: {outcome.total} entries in {seconds:.2f} s")


@click.command()
@click.argument("view", required=False)
@db_option
@click.option("--follow", is_flag=True, help="keep catching up until interrupted")
@click.option("--interval", default=1.0, show_default=True, help="seconds between passes")
@click.pass_context
def project(
    ctx: click.Context, view: str | None, db_url: str | None, follow: bool, interval: float
) -> None:
    """Catch VIEW (every view when omitted) up with the journal."""
    store = open_for(resolve_db(ctx, db_url), Purpose.MAINTAIN)
    follower = ViewFollower(store, interval, _views(view))

    def report(outcome: runner.Outcome) -> None:
        click.echo(", ".join(f"{n}: +{k} entries" for n, k in outcome.entries.items()))

    if not follow:
        report(follower.catch_up_now())
        return
    # until interrupted or terminated: each pass is one transaction, so nothing is half done
    follower.run(on_pass=lambda outcome: report(outcome) if outcome.total else None)


@click.command()
@click.argument("view", required=False)
@db_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def check(ctx: click.Context, view: str | None, db_url: str | None, as_json: bool) -> None:
    """Recompute VIEW (every view when omitted) from the journal; exit 1 on any drift."""
    store = open_for(resolve_db(ctx, db_url), Purpose.MAINTAIN)
    names = _views(view)
    drifts = check_views(store, names)
    if as_json:
        echo_json(
            [
                {
                    "view": d.view,
                    "key": list(d.key),
                    "column": d.column,
                    "stored": d.stored,
                    "expected": d.expected,
                }
                for d in drifts
            ]
        )
    elif drifts:
        for drift in drifts[:200]:
            click.echo(f"DRIFT {drift}", err=True)
        more = len(drifts) - 200
        if more > 0:
            click.echo(f"... and {more} more", err=True)
        click.echo(f"{len(drifts)} difference(s) between the views and the journal", err=True)
    else:
        click.echo(f"OK: {', '.join(names)} match the journal (up to their checkpoints)")
    sys.exit(1 if drifts else 0)
