"""``ledger export`` (history to an Avro OCF) and ``ledger replay`` (OCF into a new ledger)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger import export as history
from ledger.commands.common import db_option, ledger_files, resolve_db
from ledger.files import check_output, is_stdout, output_file
from ledger.runtime import tune_gc_for_throughput
from ledger.store.opening import open_store
from ledger.store.store import Store


@click.command()
@db_option
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="replace OUT if it exists (never a database or a key)")
@click.pass_context
def export(ctx: click.Context, db_url: str | None, out: Path, force: bool) -> None:
    """Write the whole event history (applied, rejected, parked, in ledger order) with its
    schemas and chain heads to OUT, an Avro object container file (`-`: stdout, when it
    is not a terminal). An existing OUT is kept unless --force; OUT appears whole or not
    at all (written to a temporary file, then renamed)."""
    url = resolve_db(ctx, db_url)
    protect = ledger_files(url)
    check_output(out, force=force, protect=protect)  # before the work, not after it
    store = open_store(url, create=False)
    try:
        with output_file(out, force=force, protect=protect, binary=True) as temp:
            report = history.export(store, temp)
    finally:
        store.dispose()
    where = "stdout" if is_stdout(out) else out
    # with OUT on stdout the summary goes to stderr, out of the data's way
    click.echo(
        f"exported {report.events} events and {report.dead_letters} other dead letters to {where}",
        err=is_stdout(out),
    )
    click.echo(f"ledger head {report.head}", err=is_stdout(out))


@click.command()
@click.argument(
    "source", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@db_option
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1))
@click.option(
    "--from-kafka",
    is_flag=True,
    help="replay the Kafka topics from offset 0 instead of an export file",
)
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (with --from-kafka)")
@click.option("--topic-orders", default=None, help="orders topic (with --from-kafka)")
@click.option("--topic-accounts", default=None, help="accounts topic (with --from-kafka)")
@click.pass_context
def replay(
    ctx: click.Context,
    source: Path | None,
    db_url: str | None,
    batch_size: int,
    from_kafka: bool,
    bootstrap: str | None,
    topic_orders: str | None,
    topic_accounts: str | None,
) -> None:
    """Rebuild a ledger from SOURCE (a file from `ledger export`) into the empty database
    --db, then print both ledger heads; exit 1 unless they are equal. With --from-kafka,
    rebuild it from the topics at offset 0 and print its head (docs/ordering.md: the
    same head as any complete consumption of those topics)."""
    tune_gc_for_throughput()
    if from_kafka == (source is not None):
        raise click.UsageError("give either SOURCE or --from-kafka")
    store = open_store(resolve_db(ctx, db_url))  # replay makes a new ledger
    if from_kafka:
        _replay_kafka(ctx, store, bootstrap, topic_orders, topic_accounts)
        return
    assert source is not None
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


def _replay_kafka(
    ctx: click.Context,
    store: Store,
    bootstrap: str | None,
    topic_orders: str | None,
    topic_accounts: str | None,
) -> None:
    from dataclasses import replace

    from consumers.replay import replay_topics
    from ledger.store.verify import verify

    settings = ctx.obj
    topics = replace(
        settings.topics,
        orders=topic_orders or settings.topics.orders,
        accounts=topic_accounts or settings.topics.accounts,
    )
    if verify(store).chains:
        raise click.ClickException("the target database already holds a ledger: give an empty one")
    try:
        with click.progressbar(length=0, label="replaying", file=sys.stderr) as bar:
            applied = replay_topics(
                store, bootstrap or settings.kafka_bootstrap, topics, progress=bar.update
            )
    except (ValueError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    report = verify(store)
    click.echo(f"replayed {applied} records from {topics.orders} and {topics.accounts}")
    click.echo(f"replayed head {report.head}")
    if not report.ok:
        click.echo(f"the replayed ledger does not verify: {report.problem}", err=True)
        sys.exit(1)
