"""``ledger simulate``: a seeded platform's events as a JSON-lines file that ``ledger
ingest`` and ``ledger produce`` take (ledger/simulate.py; the same seed, the same file)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger.files import FileRefused, output_file
from ledger.jsonform import event_to_json
from ledger.simulate import generate, generate_dense


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path), default="events.jsonl")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--orders", type=click.IntRange(1, 10_000_000), help="default: 300 (dense: 2,000)")
@click.option("--sharers", type=click.IntRange(1, 1_000_000), help="default: 40 (dense: 60)")
@click.option("--buyers", type=click.IntRange(1, 10_000_000), help="default: 200 (dense: 400)")
@click.option(
    "--dense",
    is_flag=True,
    help="barriers all along the stream (plans, enrollments, settlement runs, payouts "
    "between the buyers' events) instead of plans first and finance last",
)
@click.option("--force", is_flag=True, help="replace OUT if it exists")
def simulate(
    out: Path,
    seed: int,
    orders: int | None,
    sharers: int | None,
    buyers: int | None,
    dense: bool,
    force: bool,
) -> None:
    """Write a simulated platform's events to OUT (JSON lines; `-`: stdout): plans,
    sharers and their uplines, clicks, orders, completions, refunds, a settlement run and
    payouts. Then: `ledger ingest OUT` or `ledger produce OUT`."""
    if dense:
        events = generate_dense(
            seed, orders=orders or 2_000, sharers=sharers or 60, buyers=buyers or 400
        )
    else:
        events = generate(
            seed, orders=orders or 300, sharers=sharers or 40, buyers=buyers or 200
        ).all()
    try:
        with output_file(out, force=force) as temp, temp.open("w", encoding="utf-8") as fh:
            for event in events:
                fh.write(json.dumps(event_to_json(event), ensure_ascii=False) + "\n")
    except FileRefused as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(events)} events (seed {seed}) written to {out}", err=True)
