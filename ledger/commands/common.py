"""Helpers shared by the CLI commands: the --db option, JSON output, time parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from ledger.config import Settings


def db_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--db", "db_url", default=None, metavar="URL",
        help="SQLAlchemy URL of the ledger database (default: LEDGER_DB_URL or ./ledger.sqlite)",
    )(func)


def resolve_db(ctx: click.Context, db_url: str | None) -> str:
    settings: Settings = ctx.obj
    return db_url or settings.db_url


def parse_time(value: str) -> int:
    """ISO-8601 (UTC if no zone) or integer ms since the epoch → ms."""
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO-8601 time or ms since epoch: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def format_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join(str(x).rjust(w) if str(x).lstrip("-").isdigit() else str(x).ljust(w)
                             for x, w in zip(row, widths, strict=True)))
    return "\n".join(out)
