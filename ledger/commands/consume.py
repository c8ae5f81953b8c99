"""``ledger consume``: run the Kafka consumer until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import replace

import click
from sqlalchemy.exc import OperationalError

from consumers.clientlog import forward_kafka_client_logs
from consumers.dead_letter_topic import DeadLetterTopic
from consumers.loop import ConsumerConfig, ConsumerLoop
from consumers.metrics import ConsumerMetrics
from ledger.bootstrap import Purpose, System, open_system
from ledger.commands.common import allow_owner_option, db_option, resolve_db
from ledger.config import ConfigError, Settings
from ledger.kafka.auth import client_options
from ledger.kafka.publisher import Publisher
from ledger.logs import get_logger
from ledger.runtime import tune_gc_for_throughput

log = get_logger("ledger.consume")


@click.command()
@db_option
@allow_owner_option
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (LEDGER_KAFKA_BOOTSTRAP)")
@click.option("--group", default=None, help="consumer group (LEDGER_CONSUMER_GROUP)")
@click.option("--topic-orders", default=None, help="orders topic (LEDGER_TOPIC_ORDERS)")
@click.option("--topic-accounts", default=None, help="accounts topic (LEDGER_TOPIC_ACCOUNTS)")
@click.option(
    "--marker-grace",
    type=float,
    default=60.0,
    show_default=True,
    help="seconds a barrier waits for a missing marker in a partition read to its "
    "end before this consumer writes it (a publisher died in between)",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="serve Prometheus metrics on 127.0.0.1:PORT (LEDGER_METRICS_PORT)",
)
@click.option("--max-poll-records", type=int, default=None, help="records per batch")
@click.option(
    "--instance-id",
    default=None,
    help="static group membership (Kafka group.instance.id): a consumer restarted "
    "with the same id gets its partitions back at once instead of after the "
    "session timeout; give each consumer of a group its own id",
)
@click.option(
    "--mirror-dead-letters",
    is_flag=True,
    help="also publish every dead letter to the dead-letter topic "
    "(LEDGER_TOPIC_DEAD_LETTERS, default ledger.dead-letters)",
)
@click.pass_context
def consume(
    ctx: click.Context,
    db_url: str | None,
    allow_owner: bool,
    bootstrap: str | None,
    group: str | None,
    topic_orders: str | None,
    topic_accounts: str | None,
    marker_grace: float,
    metrics_port: int | None,
    max_poll_records: int | None,
    instance_id: str | None,
    mirror_dead_letters: bool,
) -> None:
    """Apply events from Kafka to the ledger, one transaction per poll batch.

    Stops cleanly on SIGTERM/SIGINT: the batch in hand is finished and committed first."""
    tune_gc_for_throughput()
    settings: Settings = ctx.obj
    forward_kafka_client_logs()  # broker outages and reconnects show in our log
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _f: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _f: stopping.append(signum))
    try:
        auth = client_options(settings, "consumer")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    system = _open_when_reachable(settings, resolve_db(ctx, db_url), stopping, allow_owner)
    if system is None:
        return
    overrides: tuple[tuple[str, object], ...] = ()
    if max_poll_records:
        overrides += (("max_poll_records", max_poll_records),)
    if instance_id:
        overrides += (("group_instance_id", instance_id),)
    topics = replace(
        settings.topics,
        orders=topic_orders or settings.topics.orders,
        accounts=topic_accounts or settings.topics.accounts,
    )
    config = ConsumerConfig(
        bootstrap_servers=bootstrap or settings.kafka_bootstrap,
        group_id=group or settings.consumer_group,
        orders_topic=topics.orders,
        accounts_topic=topics.accounts,
        max_batch=max_poll_records or ConsumerConfig.max_batch,
        marker_grace_s=marker_grace,
        kafka_overrides=overrides,
        auth=tuple(auth.items()),
    )
    metrics = ConsumerMetrics()
    port = metrics_port if metrics_port is not None else settings.metrics_port
    if port:
        metrics.serve(port)
        log.info("metrics served", address=f"http://127.0.0.1:{port}/metrics")
    mirror = (
        DeadLetterTopic(config.bootstrap_servers, settings.topics.dead_letters, **auth)
        if mirror_dead_letters
        else None
    )
    # connects only if ever needed; writes barrier markers only, as the consumer. No
    # deadline: the consumer cannot move past the barrier without them (a bounded flush
    # made it give up while 2 of 3 brokers were down, and hang in close)
    repair = Publisher(
        config.bootstrap_servers, topics, auth={"orders": auth, "accounts": auth}, ack_timeout=None
    )

    def seal(barrier: int, partitions: list[int]) -> None:
        repair.seal(barrier, partitions)
        repair.flush()

    loop = ConsumerLoop(config, system.service, metrics, dead_letter_sink=mirror, seal=seal)
    if stopping:
        return

    def stop(signum: int) -> None:
        log.info("stopping after the batch in hand", signal=signal.Signals(signum).name)
        loop.stop()

    def on_signal(signum: int, _frame: object) -> None:
        # a handler runs between two bytecodes of the main thread, maybe while it holds
        # a lock that stop() takes (an Event's, a Future's): stop from another thread
        threading.Thread(target=stop, args=(signum,), name="stop", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        loop.run()
    finally:
        repair.close()
        if mirror is not None:
            mirror.close()


def _open_when_reachable(
    settings: Settings, url: str, stopping: list[int], allow_owner: bool
) -> System | None:
    """Open the store, waiting (with capped backoff) while the database is unreachable, so
    a consumer started before its database simply waits. None if stopped meanwhile."""
    delay = 0.5
    while not stopping:
        try:
            return open_system(settings, url, Purpose.APPLY, allow_owner=allow_owner)
        except OperationalError as exc:
            first = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
            log.warning("database unreachable; retrying", retry_in_s=delay, error=first)
            deadline = time.monotonic() + delay
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.05)
            delay = min(delay * 2, 10.0)
    return None
