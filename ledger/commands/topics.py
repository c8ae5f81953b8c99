"""``ledger create-topics``: create the ledger's topics with the layout docs/topics.md
describes (many partitions for buyer events, exactly one for the barrier events), with the
cluster's replication settings unless told otherwise (docs/operations.md "The replicated
Kafka cluster")."""

from __future__ import annotations

from typing import Any

import click

from ledger.config import ConfigError, Settings
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
    from kafka.admin import KafkaAdminClient, NewTopic  # lazily: CLI start-up stays fast

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
    admin = KafkaAdminClient(bootstrap_servers=bootstrap or settings.kafka_bootstrap, **auth)
    try:
        existing = {
            t["name"]: len(t["partitions"])
            for t in admin.describe_topics(
                [name for name in wanted if name in set(admin.list_topics())]
            )
        }
        missing = [name for name in wanted if name not in existing]
        if missing:
            # -1: the broker's default.replication.factor (3 on deploy/kafka's cluster)
            factor = replication_factor or USE_BROKER_DEFAULT
            admin.create_topics([NewTopic(name, wanted[name], factor) for name in missing])
            admin.wait_for_topics(missing, timeout_ms=30_000)  # led and known to all
        replicas = replication_factors(admin, list(wanted))
        for name in missing:
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
    finally:
        admin.close()


def replication_factors(admin: Any, names: list[str]) -> dict[str, int]:
    """Each topic's replicas per partition (its first partition's; they are created equal)."""
    return {
        t["name"]: len(t["partitions"][0]["replica_nodes"]) if t["partitions"] else 0
        for t in admin.describe_topics(names)
    }
