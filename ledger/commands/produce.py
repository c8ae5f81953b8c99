"""``ledger produce FILE.jsonl``: publish the events of a JSON-lines file to Kafka.

Invalid lines are reported on stderr (line number, reason, message) and skipped; the valid
ones are published in file order. After barrier events, before the next buyer event, the
publisher marks every orders partition with the last barrier's offset (docs/ordering.md),
so consuming the topics applies the file's events in file order.
Exit status: 0 on success, 1 if some line was invalid (0 with ``--skip-invalid``),
2 if publishing failed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

from ledger.config import ConfigError, Settings
from ledger.domain.events import InvalidEvent
from ledger.jsonform import iter_jsonl
from ledger.kafka.auth import publisher_options
from ledger.kafka.publisher import Publisher, PublishError

ADMIN_RETRY_S = 30.0  # how long the topic check tries while brokers answer no connection


@click.command("produce")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default: settings).")
@click.option("--topic-orders", default=None, help="Override the orders topic name.")
@click.option("--topic-accounts", default=None, help="Override the accounts topic name.")
@click.option("--skip-invalid", is_flag=True, help="Exit 0 even if some lines were invalid.")
@click.option(
    "--flush-timeout", default=60.0, show_default=True, help="Seconds for the final flush."
)
@click.pass_context
def produce(
    ctx: click.Context,
    file: str,
    bootstrap: str | None,
    topic_orders: str | None,
    topic_accounts: str | None,
    skip_invalid: bool,
    flush_timeout: float,
) -> None:
    """Publish the events of FILE (JSON lines, docs/events.md) to Kafka."""
    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
    topics = settings.topics
    if topic_orders:
        topics = replace(topics, orders=topic_orders)
    if topic_accounts:
        topics = replace(topics, accounts=topic_accounts)
    # buyer activity as the publisher principal, barrier events as finance (ledger/kafka/auth.py)
    try:
        auth = publisher_options(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    server = bootstrap or settings.kafka_bootstrap
    _require_topics(server, {topics.orders: auth["orders"], topics.accounts: auth["accounts"]})
    publisher = Publisher(server, topics, auth=auth)
    published = 0
    problems: list[str] = []
    try:
        with (
            open(file, "rb") as fh,
            click.progressbar(
                length=os.path.getsize(file), label="publishing", file=sys.stderr
            ) as bar,
        ):
            for number, item in iter_jsonl(_tracked(fh, bar)):
                if isinstance(item, InvalidEvent):
                    # Reported after the bar, which would otherwise overwrite the line.
                    problems.append(f"{file}:{number}: {item.reason}: {item.message}")
                    continue
                publisher.publish(item)
                published += 1
        publisher.flush(flush_timeout)
    except PublishError as exc:
        publisher.close(timeout=0)
        _report(problems)
        click.echo(f"error: {exc}", err=True)
        click.echo(f"published {publisher.acked}, invalid {len(problems)}, failed", err=True)
        ctx.exit(2)
    publisher.close()
    _report(problems)
    click.echo(f"published {published}, invalid {len(problems)}")
    if problems and not skip_invalid:
        ctx.exit(1)


def _require_topics(bootstrap: str, writers: dict[str, Any]) -> None:
    """Refuse to publish to a missing topic: a broker that auto-creates it would give it
    its default partition count, not the layout the ordering rules need. Each topic is
    looked up as the principal that writes it (a principal sees only the topics it may
    describe)."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    def topics_seen_by(auth: dict[str, Any]) -> set[str]:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth)
        try:
            return set(admin.list_topics())
        finally:
            admin.close()

    missing = []
    for name, auth in writers.items():
        # kafka-python sends the request to any broker it knows; one that died seconds ago
        # (not yet fenced by the controller, ~9 s) refuses the connection: ask again
        deadline = time.monotonic() + ADMIN_RETRY_S
        while True:
            try:
                seen = topics_seen_by(auth)
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"cannot connect to Kafka at {bootstrap}: {exc}"
                    ) from exc
                time.sleep(0.5)
        if name not in seen:
            missing.append(name)
    if missing:
        raise click.ClickException(
            f"topic(s) {', '.join(missing)} do not exist: run `ledger create-topics` first"
        )


def _report(problems: list[str]) -> None:
    for line in problems:
        click.echo(line, err=True)


def _tracked(lines: Iterable[bytes], bar: ProgressBar[int]) -> Iterator[bytes]:
    """Yield the lines of a binary file, advancing the progress bar by their size."""
    for line in lines:
        bar.update(len(line))
        yield line
