"""Read-only commands: verify, balances, dead-letters, parked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from ledger.bootstrap import Purpose, open_for
from ledger.chain.checkpoint import Checkpoint, CheckpointError, check_signature, load_public_key
from ledger.chain.journal import VerifyReport
from ledger.commands.common import (
    LIMIT,
    TIME,
    amount_cell,
    db_option,
    echo_json,
    format_time,
    hex_digest,
    printable_id,
    resolve_db,
    stage_bars,
    table,
)
from ledger.read import balances as balance_reads
from ledger.read import operations
from ledger.runtime import tune_gc_for_throughput
from ledger.store.audit import AuditStore, reached_checkpoint
from ledger.store.checkpoints import load_checkpoints
from ledger.store.errors import StoreError
from ledger.store.store import Store
from ledger.store.verify import verify as verify_store


@click.command()
@db_option
@click.option(
    "--expect-head",
    default=None,
    callback=hex_digest,
    help="fail unless the ledger head equals this",
)
@click.option(
    "--no-replay", is_flag=True, help="check the hash chains only, not the replay of the event log"
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the auditor's replay state (a SQLite file it owns, e.g. beside the public key): "
    "kept at the newest stored checkpoint signed by --pub once everything verifies",
)
@click.option(
    "--pub",
    "pub_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="the checkpoint signer's public key (PEM), with --state",
)
@click.option(
    "--since-checkpoint",
    is_flag=True,
    help="the daily check: only what came after the checkpoint --state is at (the first "
    "run, with no state yet, is the full check)",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def verify(
    ctx: click.Context,
    db_url: str | None,
    expect_head: str | None,
    no_replay: bool,
    state_path: Path | None,
    pub_path: Path | None,
    since_checkpoint: bool,
    as_json: bool,
) -> None:
    """Recompute every hash chain and replay the event log; exit 1 and name the first bad
    row if anything was altered. Never writes to the database.

    By default the full check, from genesis. With --since-checkpoint (and --state,
    --pub) the daily check: the signed checkpoint the state file is at must still be in
    place, and only the rows after it are walked, replayed and compared
    (docs/journal.md, "Verifying")."""
    if (state_path is None) != (pub_path is None) or (since_checkpoint and state_path is None):
        raise click.UsageError("--state and --pub go together; --since-checkpoint needs both")
    tune_gc_for_throughput()  # the replay allocates like ingestion does
    store = open_for(resolve_db(ctx, db_url), Purpose.READ)
    state = None
    try:
        kwargs: dict[str, Checkpoint | None] = {}
        if state_path is not None and pub_path is not None:
            state, kwargs = _audit_state(store, state_path, pub_path, since_checkpoint)
        with stage_bars() as progress:
            report = verify_store(
                store,
                expect_head=expect_head,
                replay=not no_replay,
                progress=progress,
                state=state,
                **kwargs,  # type: ignore[arg-type]
            )
    finally:
        store.dispose()
        if state is not None:
            state.dispose()
    if as_json:
        click.echo(report_json(report))
    elif report.ok:
        since = "" if report.since is None else f" since the checkpoint of {report.since}"
        click.echo(
            f"OK: {report.entries_checked} entries in {len(report.chains)} chain(s) and "
            f"{report.events_checked} logged events verified{since}"
        )
        click.echo(f"ledger head {report.head}")
    else:
        click.echo(safe_text(f"TAMPERED: {report.problem}"), err=True)
        click.echo(
            safe_text(
                f"first bad seq: {report.first_bad_seq} in {report.table} "
                f"(chain {report.chain_of_bad})"
            ),
            err=True,
        )
    sys.exit(0 if report.ok else 1)


def _audit_state(
    store: Store, path: Path, pub_path: Path, since_checkpoint: bool
) -> tuple[AuditStore, dict[str, Checkpoint | None]]:
    """The auditor's state file, the checkpoint to start from (its own, signature checked
    again: the file could have been replaced) and the newest stored one to keep it at."""
    from ledger.commands.checkpoint import read_key

    key = read_key(load_public_key, pub_path)
    try:
        state = AuditStore(path)
    except (StoreError, SQLAlchemyError) as exc:
        raise click.ClickException(f"{path}: not a replay state file ({exc})") from exc
    with state.begin() as conn:
        since = reached_checkpoint(conn) if since_checkpoint else None
    if since is not None:
        try:
            check_signature(since, key)
        except CheckpointError as exc:
            state.dispose()
            raise click.ClickException(f"{path}: its checkpoint {exc}") from exc
    keep_at = None
    for stored in reversed(load_checkpoints(store)):  # newest first
        if stored.checkpoint is None:
            continue
        try:
            check_signature(stored.checkpoint, key)
        except CheckpointError:
            continue  # signed by another key, or forged: `ledger checkpoint verify` says
        keep_at = stored.checkpoint
        break
    return state, {"since": since, "keep_at": keep_at}


def report_json(report: VerifyReport) -> str:
    """The report as JSON that always parses, whatever text the database held."""

    def links(chains: dict[str, tuple[int, str]]) -> dict[str, dict[str, object]]:
        return {
            safe_text(c): {"chain_seq": s, "hash": safe_text(h)} for c, (s, h) in chains.items()
        }

    body = {
        "ok": report.ok,
        "entries_checked": report.entries_checked,
        "head": report.head,
        "chains": links(report.chains),
        "events_checked": report.events_checked,
        "events_head": report.events_head,
        "event_chains": links(report.event_chains),
        "first_bad_seq": report.first_bad_seq,
        "table": report.table,
        "chain": None if report.chain_of_bad is None else safe_text(report.chain_of_bad),
        "problem": None if report.problem is None else safe_text(report.problem),
        "since_checkpoint": report.since,
    }
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False)


def safe_text(value: object) -> str:
    """Printable on any terminal: lone surrogates (text that was not UTF-8) escaped."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


@click.command()
@db_option
@click.option("--sharer", "sharer_id", default=None, callback=printable_id, help="only this sharer")
@click.option(
    "--as-of", "as_of", type=TIME, default=None, help="event time (ISO-8601 or ms): balances then"
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable: minor units, exponents")
@click.option("--minor", is_flag=True, help="the table in integer minor units, unformatted")
@click.pass_context
def balances(
    ctx: click.Context,
    db_url: str | None,
    sharer_id: str | None,
    as_of: int | None,
    as_json: bool,
    minor: bool,
) -> None:
    """Per sharer and currency: pending, available, in-flight, paid (from the journal),
    as amounts read in LEDGER_LOCALE (en, zh_CN)."""
    store = open_for(resolve_db(ctx, db_url), Purpose.READ)
    with store.read() as conn:
        rows = balance_reads.journal_balances(conn, sharer_id=sharer_id, as_of=as_of)
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        click.echo("no balances")
        return
    locale = ctx.obj.locale

    def cell(amount: int, currency: str) -> str:
        return str(amount) if minor else amount_cell(amount, currency, locale)

    click.echo(
        table(
            [
                [
                    r.sharer_id,
                    r.currency,
                    *(cell(x, r.currency) for x in (r.pending, r.available, r.inflight, r.paid)),
                ]
                for r in rows
            ],
            ["sharer", "currency", "pending", "available", "inflight", "paid"],
            right=(2, 3, 4, 5),
        )
    )


@click.command("dead-letters")
@db_option
@click.option("--limit", type=LIMIT, default=1000, show_default=True)
@click.option(
    "--redriven/--not-redriven",
    default=None,
    help="only the ones finance redrove / only the ones left to correct",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dead_letters(
    ctx: click.Context, db_url: str | None, limit: int, redriven: bool | None, as_json: bool
) -> None:
    """Events that could not be applied, with their reason codes and their redrive
    (`ledger redrive ID` corrects one and resubmits it)."""
    with open_for(resolve_db(ctx, db_url), Purpose.READ).read() as conn:
        rows = operations.dead_letters(conn, redriven=redriven, limit=limit).items
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        click.echo("no dead letters")
        return
    click.echo(
        table(
            [
                [
                    str(r.id),
                    str(r.event_id or "-"),
                    str(r.event_type or "-"),
                    str(r.reason),
                    str(r.source),
                    str(r.message)[:80],
                    "-" if r.redriven is None else f"{r.redriven.outcome} {r.redriven.event_id}",
                ]
                for r in rows
            ],
            ["id", "event_id", "type", "reason", "source", "message", "redriven"],
        )
    )


@click.command()
@db_option
@click.option("--limit", type=LIMIT, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def parked(ctx: click.Context, db_url: str | None, limit: int, as_json: bool) -> None:
    """Events waiting for a reference (an order, an upline, a payout request). Exit 1
    if one waits for a reference that is applied (it should have been released)."""
    store = open_for(resolve_db(ctx, db_url), Purpose.READ)
    with store.read() as conn:
        rows = operations.parked(conn, limit=limit).items
        orphans = operations.orphaned_parked(conn)
    if as_json:
        echo_json([r.as_dict() for r in rows])
    elif not rows:
        click.echo("no parked events")
    else:
        click.echo(
            table(
                [
                    [
                        str(r.event_id),
                        str(r.type),
                        str(r.waits_for),
                        str(r.source),
                        format_time(r.parked_at),
                    ]
                    for r in rows
                ],
                ["event_id", "type", "waits for", "source", "parked at"],
            )
        )
    if orphans:
        # the reference is applied, so the event should have been released with it
        click.echo(
            f"{len(orphans)} parked event(s) wait for a reference that is applied: "
            + ", ".join(f"{o.event_id} ({o.waits_for})" for o in orphans[:10])
            + ": a defect, please report it with `ledger export`",
            err=True,
        )
        ctx.exit(1)
