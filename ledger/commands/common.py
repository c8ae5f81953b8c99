"""Helpers shared by the CLI commands: the --db option, the service's database role,
JSON output, time parsing."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ledger.config import Settings
from ledger.read.money import format_money
from schemas.times import MAX_TIME_MS, MIN_TIME_MS, ms_to_iso

if TYPE_CHECKING:
    pass

P = ParamSpec("P")
R = TypeVar("R")


def db_option(func: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--db",
        "db_url",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL of the ledger database (default: LEDGER_DB_URL or ./ledger.sqlite)",
    )(func)


def resolve_db(ctx: click.Context, db_url: str | None) -> str:
    """The --db value, else the configured URL; an empty --db is an error, not a default."""
    if db_url is not None and not db_url.strip():
        raise click.BadParameter("an empty URL names no database", param_hint="--db")
    settings: Settings = ctx.obj
    return db_url or settings.db_url


def allow_owner_option(func: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--allow-owner",
        is_flag=True,
        help="run even if the PostgreSQL role is a superuser or owns the ledger "
        "(refused by default: the service connects as its least-privileged role)",
    )(func)


def ledger_files(url: str) -> list[Path]:
    """The file a SQLite URL names (its -wal/-shm are covered with it), for outputs that
    must never be written over the ledger: nothing for a server database."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL: open_store reports it
        return []
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return []
    return [Path(database.removeprefix("file:").split("?")[0])]


_MS = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also accepts "²"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: str) -> int:
    """ISO-8601 (UTC if no zone) or integer ms since the epoch → ms, within the years
    0001..9999 that events may carry. Raises click.BadParameter."""
    if _MS.fullmatch(value):
        ms = int(value)
    else:
        try:
            if not (value.isascii() and value.isprintable()):
                raise ValueError("only printable ASCII")
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            ms = (parsed - _EPOCH) // timedelta(milliseconds=1)
        except (ValueError, OverflowError) as exc:
            raise click.BadParameter(f"not an ISO-8601 time or ms since epoch: {value!r}") from exc
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise click.BadParameter(f"{value!r} is outside the years 0001..9999")
    return ms


class TimeParam(click.ParamType[int, object]):
    """A --as-of style option: ``parse_time`` as a click type (an empty value is an error)."""

    name = "TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


TIME = TimeParam()
LIMIT = click.IntRange(1, 2**31 - 1)  # rows to show: a SQL LIMIT must fit the database


def printable_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option callback for ids and chain names: what the ledger stores is 1..200
    printable characters, so anything else (a control character, bytes of a non-UTF-8
    argument) is refused here rather than by the database."""
    if value is not None and not (0 < len(value) <= 200 and value.isprintable()):
        raise click.BadParameter(f"must be 1 to 200 printable characters, not {value!r}")
    return value


def hex_digest(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option callback for a hash: 64 hex digits, returned in lower case as ``verify``
    prints them."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise click.BadParameter(f"expected 64 hex digits, not {value!r}")
    return value.lower()


def format_time(ms: int | None) -> str:
    return "-" if ms is None else ms_to_iso(ms)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\u202e``):
    what the ledger shows may come from a hostile record, and a terminal obeys escape
    sequences and bidirectional overrides."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def table(rows: list[list[str]], headers: list[str], right: Collection[int] = ()) -> str:
    """A text table; numbers, and the columns named in ``right`` (amounts), right-aligned."""
    rows = [[printable(str(x)) for x in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append(
            "  ".join(
                str(x).rjust(w) if n in right or str(x).lstrip("-").isdigit() else str(x).ljust(w)
                for n, (x, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


@contextmanager
def stage_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(stage, done, total)`` callback drawing one click progress bar per stage
    on stderr when it is a terminal (stdout stays for the result, e.g. ``--json``; a
    script capturing both gets no bar text mixed in)."""
    current: dict[str, Any] = {}
    if not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return

    def close() -> None:
        if current:
            current["bar"].__exit__(None, None, None)
            current.clear()

    def progress(stage: str, done: int, total: int) -> None:
        if current.get("stage") != stage:
            close()
            bar = click.progressbar(
                length=max(total, 1), label=f"{stage:<18}", file=sys.stderr, show_pos=True
            )
            bar.__enter__()
            current.update(stage=stage, bar=bar, at=0)
        current["bar"].update(done - current["at"])
        current["at"] = done

    try:
        yield progress
    finally:
        close()


def amount_cell(minor: int, currency: str, locale: str) -> str:
    """An amount as a person reads it (ledger/read/money.py), on one terminal line."""
    return format_money(minor, currency, locale).replace("\u00a0", " ")
