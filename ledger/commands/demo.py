"""``ledger demo``: the main job on the embedded default (SQLite, in-process events).

Simulates a small 微商 platform, ingests its events through the same service that the
Kafka consumer uses, then shows balances, one order's three-level split, the dead
letters and the verified ledger head.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ledger.bootstrap import Purpose, open_system
from ledger.commands.common import amount_cell, table
from ledger.commands.demo_views import check_dashboard_config, show_views
from ledger.domain.events import Event, OrderPlaced
from ledger.files import is_sqlite_database
from ledger.jsonform import event_to_json
from ledger.read import balances, operations, orders
from ledger.service import Received, Undecodable
from ledger.simulate import generate
from ledger.store.store import Store
from ledger.store.verify import verify

DEFAULT_DB = Path(".cache/demo/ledger.sqlite")


def sqlite_file(_ctx: click.Context, _param: click.Parameter, value: str) -> Path:
    """``--db`` as every command takes it, a database URL; the demo's must be SQLite (it
    deletes and recreates the file)."""
    try:
        url = make_url(value)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() != "sqlite" or not url.database:
        hint = f" (sqlite:///{value})" if "://" not in value else ""
        raise click.BadParameter(
            f"not a SQLite URL: {value!r}: the demo makes a SQLite ledger, "
            f"--db sqlite:///PATH{hint}"
        )
    if url.database == ":memory:" or url.database.startswith("file:"):
        raise click.BadParameter("the demo needs a file: --db sqlite:///PATH")
    return Path(url.database)


@click.command()
@click.option(
    "--db",
    "db_path",
    default=f"sqlite:///{DEFAULT_DB}",
    show_default=True,
    callback=sqlite_file,
    metavar="URL",
    help="SQLite ledger to (re)create, as a URL like every command's --db",
)
@click.option("--seed", default=7, show_default=True)
@click.option("--orders", type=click.IntRange(1, 1_000_000), default=300, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace an existing file given with --db")
def demo(db_path: Path, seed: int, orders: int, overwrite: bool) -> None:
    """Run a simulated affiliate platform through the ledger and show the results."""
    if db_path.exists() and db_path != DEFAULT_DB:
        # the demo deletes and recreates its database: never a ledger named by mistake,
        # and never a file that is not a database at all, even with --overwrite
        if not overwrite:
            raise click.ClickException(
                f"{db_path} exists and the demo would delete it: name a new file, "
                "or pass --overwrite"
            )
        if not is_sqlite_database(db_path):
            raise click.ClickException(
                f"{db_path} is not a SQLite database: the demo never deletes it"
            )
    db_path.parent.mkdir(parents=True, exist_ok=True)
    check_dashboard_config(db_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    system = open_system(click.get_current_context().obj, f"sqlite:///{db_path}", Purpose.CREATE)
    store = system.store
    work = generate(seed, orders=orders)
    events = work.all()
    batch: list[Received | Undecodable] = [
        Received(e, f"demo:{n}", "demo") for n, e in enumerate(events, 1)
    ]
    batch.insert(
        len(work.setup) + 5, Received(events[len(work.setup) + 5], "demo:redelivered", "demo")
    )
    batch.append(
        Undecodable(
            "demo:malformed",
            "malformed_json",
            "not valid JSON",
            '{"type": "order_placed", "order_id": ',
        )
    )
    service = system.service
    totals = {
        "applied": 0,
        "rejected": 0,
        "parked": 0,
        "duplicates": 0,
        "undecodable": 0,
        "entries": 0,
    }
    with click.progressbar(length=len(batch), label="ingesting", file=sys.stderr) as bar:
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            report = service.ingest(chunk)
            for name in totals:
                totals[name] += getattr(report, name)
            bar.update(len(chunk))

    click.echo(
        f"\nIngested {len(batch)} events into {db_path}: "
        + ", ".join(f"{v} {k}" for k, v in totals.items())
    )
    with store.read() as conn:
        found = balances.journal_balances(conn)
    top = sorted(found, key=lambda b: -(b.pending + b.available + b.inflight + b.paid))[:10]
    locale = click.get_current_context().obj.locale
    click.echo("\nTop sharers:")
    click.echo(
        table(
            [
                [
                    b.sharer_id,
                    b.currency,
                    *(
                        amount_cell(x, b.currency, locale)
                        for x in (b.pending, b.available, b.inflight, b.paid)
                    ),
                ]
                for b in top
            ],
            ["sharer", "currency", "pending", "available", "inflight", "paid"],
            right=(2, 3, 4, 5),
        )
    )
    order = _three_level_order(store, events)
    _show_order(store, order, locale)
    show_views(store, order.order_id, db_path, locale)
    click.echo("\nDead letters:")
    with store.read() as conn:
        dead = operations.dead_letters(conn, limit=1000).items
    for row in dead:
        click.echo(f"  #{row.id} {row.reason}: {row.message} ({row.source})")
    checked = verify(store)
    click.echo(
        f"\nverify: {'OK' if checked.ok else 'FAILED: ' + str(checked.problem)}, "
        f"{checked.entries_checked} entries, ledger head {checked.head}"
    )
    click.echo(f"\nTry: .venv/bin/ledger balances --db sqlite:///{db_path} --sharer u00001")
    if not checked.ok:
        sys.exit(1)


def _three_level_order(store: Store, events: Sequence[Event]) -> OrderPlaced:
    """The first order whose accrual paid all three levels."""
    with store.read() as conn:
        order_id = orders.first_order_paying_levels(conn, 3)
    placed = [x for x in events if isinstance(x, OrderPlaced)]
    return next((x for x in placed if x.order_id == order_id), placed[0])


def _show_order(store: Store, order: OrderPlaced, locale: str) -> None:
    click.echo(f"\nOrder {order.order_id} ({order.currency}):")
    click.echo("  " + json.dumps(event_to_json(order), ensure_ascii=False)[:160] + " …")
    with store.read() as conn:
        rows = orders.order_postings(conn, order.order_id)
    if not rows:
        click.echo("  earns no commission")
    for kind, account, amount in rows:
        click.echo(f"  {kind:<11} {account:<28} {amount_cell(amount, order.currency, locale):>14}")
