"""``ledger export`` (history to an Avro OCF) and ``ledger replay`` (OCF into a new ledger)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from ledger.bootstrap import Purpose, System, open_for
from ledger.chain.checkpoint import load_private_key, load_public_key
from ledger.commands.checkpoint import read_key
from ledger.commands.common import db_option, ledger_files, resolve_db, stage_bars
from ledger.export.check import check
from ledger.export.file import ExportError
from ledger.export.replay import replay as replay_export
from ledger.export.write import ExportRefused
from ledger.export.write import export as export_history
from ledger.files import check_output, is_stdout, output_file
from ledger.runtime import tune_gc_for_throughput
from ledger.store.store import Store

UNSIGNED_WARNING = (
    "WARNING: this export is not signed: the replay shows only that the file agrees with "
    "itself; it cannot prove who wrote it or that it was not edited (anyone can recompute "
    "its heads and seal). Ask for a signed export and replay it with --public-key."
)


@click.command()
@db_option
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--key",
    "key_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="sign the export with this private key (PEM, the checkpoint key from `ledger keygen`)",
)
@click.option("--force", is_flag=True, help="replace OUT if it exists (never a database or a key)")
@click.pass_context
def export(
    ctx: click.Context, db_url: str | None, out: Path, key_path: Path | None, force: bool
) -> None:
    """Write the whole event history (applied, rejected, parked, in ledger order) with its
    schemas and the heads of every chain to OUT, an Avro object container file, sealed by a
    digest of its content; with --key, signed (refused if the ledger does not verify).
    `-` is stdout, when it is not a terminal. An existing OUT is kept unless --force; OUT
    appears whole or not at all (written to a temporary file, then renamed)."""
    url = resolve_db(ctx, db_url)
    protect = ledger_files(url)
    check_output(out, force=force, protect=protect)  # before the work, not after it
    key = None if key_path is None else read_key(load_private_key, key_path, private=True)
    store = open_for(url, Purpose.MAINTAIN)
    try:
        with output_file(out, force=force, protect=protect, binary=True) as temp:
            report = export_history(store, temp, key=key)
    except (ExportRefused, ExportError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.dispose()
    where = "stdout" if is_stdout(out) else out
    # with OUT on stdout the summary goes to stderr, out of the data's way
    click.echo(
        f"exported {report.events} events and {report.dead_letters} other dead letters to {where}",
        err=is_stdout(out),
    )
    click.echo(f"ledger head {report.head}", err=is_stdout(out))
    if report.key_id is None:
        click.echo("WARNING: not signed (no --key): an auditor cannot authenticate it", err=True)
    else:
        click.echo(f"signed by key {report.key_id}", err=is_stdout(out))


@click.command()
@click.argument(
    "source", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@db_option
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1))
@click.option(
    "--public-key",
    "public_key_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="authenticate the export with the signer's public key (PEM): refuse it unless that "
    "key signed exactly this file",
)
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
    public_key_path: Path | None,
    from_kafka: bool,
    bootstrap: str | None,
    topic_orders: str | None,
    topic_accounts: str | None,
) -> None:
    """Rebuild a ledger from SOURCE (a file from `ledger export`) into the empty database
    --db. The whole file is checked first (and, with --public-key, authenticated); the
    replay then runs in one transaction and commits only if it reproduces every event-log
    link, chain head and dead letter of the export: else nothing is left, exit 1. With
    --from-kafka, rebuild it from the topics at offset 0 and print its head
    (docs/ordering.md: the same head as any complete consumption of those topics)."""
    tune_gc_for_throughput()
    if from_kafka == (source is not None):
        raise click.UsageError("give either SOURCE or --from-kafka")
    if from_kafka:
        if public_key_path is not None:
            raise click.UsageError("--public-key authenticates an export file, not Kafka")
        _replay_kafka(
            ctx,
            open_for(resolve_db(ctx, db_url), Purpose.CREATE),
            bootstrap,
            topic_orders,
            topic_accounts,
        )
        return
    assert source is not None
    public_key = None if public_key_path is None else read_key(load_public_key, public_key_path)
    url = resolve_db(ctx, db_url)
    try:
        with stage_bars() as stage:
            summary = check(source, public_key, progress=_counting(stage, "checking", 0))
    except ExportError as exc:
        raise click.ClickException(f"{source}: {exc}") from exc
    if summary.key_id is None:
        click.echo(UNSIGNED_WARNING, err=True)
    elif not summary.authenticated:
        click.echo(
            f"WARNING: the export is signed by key {summary.key_id}, but without --public-key "
            "the signature was NOT checked: the file is not authenticated",
            err=True,
        )
    created = _new_sqlite_file(url)
    try:
        store = open_for(url, Purpose.CREATE)
    except BaseException:
        _remove(None, created)
        raise
    try:
        with stage_bars() as stage:
            report = replay_export(
                source,
                store,
                summary,
                batch_size=batch_size,
                progress=_counting(stage, "replaying", summary.records),
            )
    except ExportError as exc:
        _remove(store, created)
        raise click.ClickException(f"{source}: {exc}") from exc
    except OSError as exc:  # the file went away or became unreadable after the check
        _remove(store, created)
        raise click.ClickException(f"{source}: {exc.strerror or exc}") from exc
    except BaseException:  # the database failed, or ^C: rolled back; the file goes too
        _remove(store, created)
        raise
    if not report.equal:
        _remove(store, created)
        for difference in report.differences:
            click.echo(f"DIFFERS: {difference}", err=True)
        click.echo("the replay does not reproduce the export: nothing was kept", err=True)
        sys.exit(1)
    store.dispose()
    click.echo(f"replayed {report.records} records")
    click.echo(f"source head   {report.source_head}")
    click.echo(f"replayed head {report.replayed_head}")
    click.echo(
        "equal: every event log link, chain head and dead letter of the export is reproduced"
    )
    if summary.authenticated:
        click.echo(f"AUTHENTICATED: signed by key {summary.key_id}")


def _counting(
    stage: Callable[[str, int, int], None], name: str, total: int
) -> Callable[[int], None]:
    """An ``advance(n)`` callback for ``stage_bars`` (a bar only on a terminal: piped,
    an error stays one line)."""
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        stage(name, done, total)

    return advance


def _new_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, if it does not exist yet (the replay removes it again
    when it fails, so a failed replay leaves nothing behind)."""
    return next((path for path in ledger_files(url) if not path.exists()), None)


def _remove(store: Store | None, created: Path | None) -> None:
    if store is not None:
        store.dispose()
    if created is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{created}{suffix}").unlink(missing_ok=True)


def _replay_kafka(
    ctx: click.Context,
    store: Store,
    bootstrap: str | None,
    topic_orders: str | None,
    topic_accounts: str | None,
) -> None:
    from dataclasses import replace

    from consumers.replay import replay_topics
    from ledger.kafka.auth import client_options
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
        auth = client_options(settings, "consumer")
        with click.progressbar(length=0, label="replaying", file=sys.stderr) as bar:
            applied = replay_topics(
                System(settings, store).service,
                bootstrap or settings.kafka_bootstrap,
                topics,
                progress=bar.update,
                auth=auth,
            )
    except (ValueError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    report = verify(store)
    click.echo(f"replayed {applied} records from {topics.orders} and {topics.accounts}")
    click.echo(f"replayed head {report.head}")
    if not report.ok:
        click.echo(f"the replayed ledger does not verify: {report.problem}", err=True)
        sys.exit(1)
