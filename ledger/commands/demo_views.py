"""The demo's read-side part: catch the views up, show one order's multi-level payout
view and a sharer's team from them, and say how to open the dashboard."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.api.auth import TokenBook, TokenConfigError, new_token, token_item
from ledger.commands.common import amount_cell, table
from ledger.files import check_output, write_file
from ledger.read import orders, sharers
from ledger.store.store import Store
from projectors import runner


def show_views(store: Store, order_id: str, db_path: Path, locale: str = "en") -> None:
    outcome = runner.catch_up(store)
    click.echo(
        f"\nViews caught up: {', '.join(f'{n} +{k}' for n, k in outcome.entries.items())} entries"
    )
    with store.read() as conn:
        view = orders.order_payouts(conn, order_id)
        if view is None or not view.levels:
            return
        click.echo(
            f"\nMulti-level payout view of {order_id} ({view.currency}, plan {view.plan_id}):"
        )
        click.echo(
            table(
                [
                    [
                        str(lv.level),
                        lv.sharer_id,
                        amount_cell(lv.accrued, view.currency, locale),
                        amount_cell(lv.reversed, view.currency, locale),
                        amount_cell(lv.amount, view.currency, locale),
                        lv.state,
                    ]
                    for lv in view.levels
                ],
                ["level", "sharer", "accrued", "reversed", "amount", "state"],
                right=(2, 3, 4),
            )
        )
        top = view.levels[-1].sharer_id  # the highest level: the biggest team
        team = sharers.team(conn, top)
        earnings = sharers.earnings(conn, top)
    click.echo(f"\nTeam of {top} (the referral tree below them):")
    click.echo(
        table(
            [
                [
                    str(lv.level),
                    str(lv.size),
                    ", ".join(lv.members[:6]) + (" …" if lv.size > 6 else ""),
                ]
                for lv in team.levels
            ],
            ["level", "size", "members"],
        )
    )
    click.echo(f"\nEarnings of {top} by level and downline:")
    click.echo(
        table(
            [
                [
                    e.currency,
                    str(e.level),
                    e.downline_id,
                    str(e.orders),
                    amount_cell(e.amount, e.currency, locale),
                ]
                for e in earnings.by_downline
            ],
            ["currency", "level", "downline", "orders", "amount"],
            right=(4,),
        )
    )
    _dashboard_hint(db_path)


CONFIG_MARK = "# made by ledger demo"


def dashboard_config(db_path: Path) -> Path:
    return db_path.parent / "api.env"


def check_dashboard_config(db_path: Path) -> None:
    """Refuse, before the demo runs, to replace an api.env beside its database that an
    earlier demo did not write: it may be someone's real configuration."""
    config = dashboard_config(db_path)
    check_output(config, force=True)  # not a link, a directory, a database or a key
    if config.exists() and not _starts_with(config, CONFIG_MARK.encode()):
        raise click.ClickException(
            f"{config} exists and was not made by the demo: not overwritten "
            "(put the demo's database in another directory)"
        )


def _earlier_items(config: Path) -> list[str]:
    """The token items an earlier demo wrote to ``config`` (none if it did not)."""
    if not config.is_file() or not _starts_with(config, CONFIG_MARK.encode()):
        return []
    for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("LEDGER_API_TOKENS="):
            value = line.removeprefix("LEDGER_API_TOKENS=")
            try:
                TokenBook.parse(value)
            except TokenConfigError:
                return []  # not what the demo writes: start afresh
            return [item for item in value.split(",") if item]
    return []


def _starts_with(path: Path, mark: bytes) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(mark)) == mark


KEPT_TOKENS = 5  # the tokens of the last runs that keep working


def _dashboard_hint(db_path: Path) -> None:
    """A finance token for the demo database (only its hash is written down). The tokens
    printed by the demo's last runs keep working: their items stay in api.env."""
    token = new_token()
    config = dashboard_config(db_path)
    check_dashboard_config(db_path)
    items = [*_earlier_items(config), token_item("finance", token)][-KEPT_TOKENS:]
    write_file(
        config,
        f"{CONFIG_MARK}: finance tokens' hashes for the dashboard (the last "
        f"{KEPT_TOKENS} runs')\nLEDGER_API_TOKENS={','.join(items)}\n".encode(),
        force=True,
    )
    click.echo("\nOpen the finance dashboard:")
    click.echo(f"  LEDGER_CONFIG={config} .venv/bin/ledger serve --db sqlite:///{db_path}")
    click.echo("  then http://127.0.0.1:8080/dashboard/ and sign in with the finance token")
    click.echo(f"  {token}")
    click.echo(f"  (tokens printed by the last {KEPT_TOKENS} demo runs keep working)")
    click.echo(
        "  (the same token works as 'Authorization: Bearer …' on /api/v1/…; API docs at /docs)"
    )
