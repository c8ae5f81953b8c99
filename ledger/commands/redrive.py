"""``ledger redrive``: finance corrects a dead letter and resubmits it as a new event
linked to it (docs/decisions/0011-dead-letter-redrive.md), through the same sink the API
uses: applied here at once, or with ``--kafka`` published to the accounts topic with
finance's credentials for the consumer to apply."""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

from ledger.api.auth import MAX_NAME, valid_name
from ledger.bootstrap import Purpose, open_system
from ledger.commands.common import allow_owner_option, db_option, echo_json, printable, resolve_db
from ledger.config import ConfigError, Settings
from ledger.domain.changes import apply_changes, parse_pointer
from ledger.read import redrives as reads
from ledger.read.models import Change
from ledger.redrives import IGNORED_ON_RETRY, Refused, conflict_message, prepare
from ledger.submission import submit_once


def _setting(value: str) -> tuple[str, Any]:
    path, sep, text = value.partition("=")
    if not sep:
        raise click.BadParameter(f"{value!r}: expected PATH=JSON", param_hint="--set")
    if not path.startswith("/"):
        path = "/" + path.replace(".", "/")  # a bare field name, or dotted: lines.0.line_id
    try:
        parse_pointer(path)
        return path, json.loads(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: the value must be JSON (a string in quotes: "
            f"{path.lstrip('/')}='\"text\"')",
            param_hint="--set",
        ) from None


def _load_event(path: str) -> Any:
    try:
        with click.open_file(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as bad:
        raise click.BadParameter(f"{path}: {bad}", param_hint="--event") from None


def _show(value: Any) -> str:
    return printable(json.dumps(value, ensure_ascii=False))[:200]


def show_changes(changes: tuple[Change, ...]) -> None:
    if not changes:
        click.echo("no change: the original, resubmitted as it was")
    for c in changes:
        where = c.path or "(the whole record)"
        if c.op == "add":
            click.echo(f"+ {where}: {_show(c.after)}")
        elif c.op == "remove":
            click.echo(f"- {where}: {_show(c.before)}")
        else:
            click.echo(f"~ {where}: {_show(c.before)} -> {_show(c.after)}")


@click.command()
@click.argument("dead_letter_id", type=click.IntRange(1, 2**63 - 1))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PATH=JSON",
    help="change one field of the original's JSON form: a JSON pointer (or a field name) "
    "and a JSON value, e.g. --set /lines/0/line_id='\"l1\"' (repeatable)",
)
@click.option(
    "--event",
    "event_file",
    default=None,
    metavar="FILE",
    help="the whole corrected event's JSON form (docs/events.md) from FILE ('-': stdin)",
)
@click.option(
    "--by",
    default=None,
    metavar="NAME",
    help="who corrects it, recorded as the event's producer finance:NAME "
    "(default: the operating system's user name)",
)
@db_option
@allow_owner_option
@click.option(
    "--kafka",
    "use_kafka",
    is_flag=True,
    help="publish it to the accounts topic as finance (LEDGER_KAFKA_BOOTSTRAP) for the "
    "consumer to apply, instead of applying it here",
)
@click.option("--json", "as_json", is_flag=True, help="print the outcome as JSON")
@click.pass_context
def redrive(
    ctx: click.Context,
    dead_letter_id: int,
    sets: tuple[str, ...],
    event_file: str | None,
    by: str | None,
    db_url: str | None,
    allow_owner: bool,
    use_kafka: bool,
    as_json: bool,
) -> None:
    """Correct dead letter DEAD_LETTER_ID and resubmit it as a new event linked to it
    (event id redrive:<its key>): the original with --set changes, or the --event file.
    Shows what changed, then the outcome. Exit 1 if it was rejected (it is then a dead
    letter of its own, which can be redriven) or the dead letter was already redriven
    with other content."""
    if event_file is not None and sets:
        raise click.UsageError("--set changes the original; --event replaces it: one or the other")
    changes = [_setting(s) for s in sets]
    name = by or getpass.getuser()
    if not valid_name(name):
        raise click.BadParameter(f"1 to {MAX_NAME} printable characters", param_hint="--by")
    author = f"finance:{name}"
    settings: Settings = ctx.obj
    system = open_system(settings, resolve_db(ctx, db_url), Purpose.SERVE, allow_owner=allow_owner)
    try:
        with system.store.read() as conn:
            dead = reads.dead_letter(conn, dead_letter_id)
            if dead is None:
                raise click.ClickException(f"no dead letter {dead_letter_id}")
            if event_file is not None:
                corrected = _load_event(event_file)
            else:
                original = reads.original_form(dead)
                if original is None:
                    raise click.ClickException(
                        f"dead letter {dead_letter_id} never became an event (reason "
                        f"{dead.reason}): give the corrected event with --event FILE"
                    )
                corrected = _apply_sets(original, changes)
            try:
                prepared = prepare(conn, dead_letter_id, corrected, author)
            except Refused as refused:
                raise click.ClickException(refused.message) from None
        if not as_json:
            click.echo(f"redrive of dead letter {dead_letter_id} ({dead.reason}) as {author}:")
            show_changes(prepared.changes)
        try:
            sink = system.sink(kafka=use_kafka)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        done = submit_once(
            system.store,
            sink,
            prepared.event,
            f"cli:{author}:redrive:{dead_letter_id}",
            IGNORED_ON_RETRY,
        )
    finally:
        system.close()
    outcome = dict(done.outcome)
    if outcome["outcome"] == "conflict":
        outcome["message"] = conflict_message(prepared, outcome.get("message"))
    if as_json:
        echo_json(
            {
                **outcome,
                "redrive_of": prepared.redrive_of,
                "replayed": done.replayed,
                "changes": [c.as_dict() for c in prepared.changes],
            }
        )
    else:
        again = " (it was already redriven so: the first outcome)" if done.replayed else ""
        click.echo(f"{outcome['event_id']}: {outcome['outcome']}{again}")
        if outcome.get("reason"):
            click.echo(f"  {outcome['reason']}: {printable(str(outcome.get('message')))}")
    if outcome["outcome"] in ("rejected", "conflict"):
        ctx.exit(1)


def _apply_sets(original: dict[str, Any], sets: list[tuple[str, Any]]) -> Any:
    value: Any = {k: v for k, v in original.items() if k not in ("event_id", "producer")}
    for path, new in sets:
        try:
            value = apply_changes(value, [{"op": "replace", "path": path, "after": new}])
        except (KeyError, IndexError, TypeError, ValueError):
            raise click.BadParameter(
                f"{path}: no such field in the original's JSON form", param_hint="--set"
            ) from None
    return value
