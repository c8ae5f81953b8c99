"""``ledger produce FILE.jsonl``: publish the events of a JSON-lines file to Kafka.

Invalid lines are reported on stderr (line number, reason, message) and skipped; the valid
ones are published in file order. After barrier events, before the next buyer event, the
publisher marks every orders partition with the last barrier's offset (docs/ordering.md),
so consuming the topics applies the file's events in file order.
Exit status: 0 on success, 1 if some line was invalid (0 with ``--skip-invalid``),
2 if publishing failed.

Every wait for Kafka's acknowledgement has a deadline (``--ack-timeout``, default
LEDGER_KAFKA_ACK_TIMEOUT, 30 s): with fewer in-sync replicas than the topics'
``min.insync.replicas`` (2 of 3 brokers down) nothing is acknowledged, and the command
exits 2 saying how many events were acknowledged and how many not. Running the same file
again is safe: the ledger applies each event id once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

from ledger.config import ConfigError, Settings
from ledger.domain.events import InvalidEvent
from ledger.jsonform import iter_jsonl
from ledger.kafka.admin import KafkaUnreachable, with_admin
from ledger.kafka.auth import publisher_options
from ledger.kafka.publisher import Publisher, PublishError


@click.command("produce")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default: settings).")
@click.option("--topic-orders", default=None, help="Override the orders topic name.")
@click.option("--topic-accounts", default=None, help="Override the accounts topic name.")
@click.option("--skip-invalid", is_flag=True, help="Exit 0 even if some lines were invalid.")
@click.option(
    "--ack-timeout",
    type=click.FloatRange(0, 3600, min_open=True),
    default=None,
    help="Seconds to wait for Kafka to acknowledge (each barrier, the final flush); "
    "default LEDGER_KAFKA_ACK_TIMEOUT (30).",
)
@click.pass_context
def produce(
    ctx: click.Context,
    file: str,
    bootstrap: str | None,
    topic_orders: str | None,
    topic_accounts: str | None,
    skip_invalid: bool,
    ack_timeout: float | None,
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
    timeout = ack_timeout if ack_timeout is not None else settings.kafka_ack_timeout
    publisher = Publisher(server, topics, auth=auth, ack_timeout=timeout)
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
        publisher.flush()
    except PublishError as exc:
        publisher.close(timeout=0)  # what still waits is abandoned: not acknowledged
        _report(problems)
        total = _valid_events(file)
        acked = publisher.acked
        click.echo(f"error: {exc}", err=True)
        click.echo(
            f"{acked} of {total} events acknowledged by Kafka, {total - acked} not "
            f"(invalid lines: {len(problems)}); running the same file again is safe: "
            "the ledger applies each event id once",
            err=True,
        )
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
    from kafka.errors import KafkaError

    missing = []
    for name, auth in writers.items():
        # each topic as its writer sees it, asked again while a broker that just died is
        # still in the metadata (ledger/kafka/admin.py)
        try:
            seen = set(with_admin(bootstrap, auth, lambda admin: admin.list_topics()))
        except (KafkaUnreachable, KafkaError) as exc:
            raise click.ClickException(str(exc)) from exc
        if name not in seen:
            missing.append(name)
    if missing:
        raise click.ClickException(
            f"topic(s) {', '.join(missing)} do not exist: run `ledger create-topics` first"
        )


def _valid_events(file: str) -> int:
    """How many events ``file`` holds (its invalid lines aside)."""
    with open(file, "rb") as fh:
        return sum(1 for _, item in iter_jsonl(fh) if not isinstance(item, InvalidEvent))


def _report(problems: list[str]) -> None:
    for line in problems:
        click.echo(line, err=True)


def _tracked(lines: Iterable[bytes], bar: ProgressBar[int]) -> Iterator[bytes]:
    """Yield the lines of a binary file, advancing the progress bar by their size."""
    for line in lines:
        bar.update(len(line))
        yield line
