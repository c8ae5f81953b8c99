"""``ledger create-topics``: create the ledger's topics with the layout docs/topics.md
describes (many partitions for buyer events, exactly one for the barrier events), with the
cluster's replication settings unless told otherwise (docs/operations.md "The replicated
Kafka cluster")."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import click

from ledger.config import ConfigError, Settings
from ledger.kafka.admin import KafkaUnreachable, with_admin
from ledger.kafka.auth import client_options
from ledger.kafka.topics import DEFAULT_PARTITIONS

USE_BROKER_DEFAULT = -1  # CreateTopics: the broker's default.replication.factor


@click.command("create-topics")
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default: settings)")
@click.option(
    "--orders-partitions",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_PARTITIONS["orders"],
    show_default=True,
    help="partitions of the buyer-keyed orders topic (size it up front)",
)
@click.option(
    "--replication-factor",
    type=click.IntRange(1, 32),
    default=None,
    help="replicas per partition (default: the cluster's default.replication.factor, "
    "with its min.insync.replicas)",
)
@click.pass_context
def create_topics(
    ctx: click.Context,
    bootstrap: str | None,
    orders_partitions: int,
    replication_factor: int | None,
) -> None:
    """Create the orders, accounts and dead-letter topics; existing ones are checked, not
    changed. Exits 1 if an existing topic has a layout that breaks the ordering rules."""
    from kafka.errors import InvalidReplicationFactorError, KafkaError

    settings: Settings = ctx.obj
    try:
        auth = client_options(settings, "admin")  # creating topics is the admin's job
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    wanted = {
        settings.topics.orders: orders_partitions,
        settings.topics.accounts: DEFAULT_PARTITIONS["accounts"],
        settings.topics.dead_letters: 1,
    }
    server = bootstrap or settings.kafka_bootstrap
    try:
        # asked again, whole, while a broker that just died is still in the metadata
        # (ledger/kafka/admin.py): a try cut short is taken up where it stopped
        existing, created, replicas = with_admin(
            server, auth, lambda admin: _create(admin, wanted, replication_factor)
        )
    except InvalidReplicationFactorError as exc:
        raise click.ClickException(_too_few_brokers(exc, replication_factor)) from None
    except (KafkaUnreachable, KafkaError) as exc:
        raise click.ClickException(_first_line(exc)) from None
    for name in created:
        layout = f"{wanted[name]} partitions, replication factor {replicas[name]}"
        click.echo(f"created {name} ({layout})")
    bad = False
    for name, partitions in existing.items():
        layout = f"{partitions} partitions, replication factor {replicas[name]}"
        click.echo(f"exists  {name} ({layout})")
        if name == settings.topics.accounts and partitions != 1:
            click.echo(
                f"error: {name} must have exactly 1 partition (the barrier events "
                "need one total order); recreate it",
                err=True,
            )
            bad = True
    if bad:
        ctx.exit(1)


def _create(
    admin: Any, wanted: dict[str, int], replication_factor: int | None
) -> tuple[dict[str, int], list[str], dict[str, int]]:
    """Create what of ``wanted`` is missing: (the topics that existed with their partition
    counts, those created, every wanted topic's replication factor)."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    present = set(admin.list_topics())
    existing = {
        t["name"]: len(t["partitions"])
        for t in admin.describe_topics([name for name in wanted if name in present])
    }
    missing = [name for name in wanted if name not in existing]
    if missing:
        # -1: the broker's default.replication.factor (3 on deploy/kafka's cluster)
        factor = replication_factor or USE_BROKER_DEFAULT
        # an earlier try's request may have got through before its connection was lost
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(name, wanted[name], factor) for name in missing])
        admin.wait_for_topics(missing, timeout_ms=30_000)  # led and known to all
    return existing, missing, replication_factors(admin, list(wanted))


def _too_few_brokers(exc: Exception, replication_factor: int | None) -> str:
    """One line for Kafka's refusal of a replication factor above its brokers."""
    found = re.search(r"only \d+ brokers?(\(s\))? (are|is) [a-z]+", str(exc))
    reason = found.group(0) if found else type(exc).__name__
    factor = replication_factor or "the cluster's default"
    return (
        f"Kafka refused replication factor {factor}: the cluster has fewer brokers than "
        f"replicas wanted ({reason}); start the missing broker(s) "
        "(deploy/kafka/start-cluster.sh) and run this again, or pass a smaller "
        "--replication-factor (at most the brokers; with min.insync.replicas=2, below 3 "
        "one broker down stops the writes)"
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


def replication_factors(admin: Any, names: list[str]) -> dict[str, int]:
    """Each topic's replicas per partition (its first partition's; they are created equal)."""
    return {
        t["name"]: len(t["partitions"][0]["replica_nodes"]) if t["partitions"] else 0
        for t in admin.describe_topics(names)
    }
