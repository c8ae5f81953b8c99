"""``ledger serve`` (the HTTP API and the dashboard) and ``ledger api-token``."""

from __future__ import annotations

from typing import Any

import click

from ledger.api.auth import (
    MAX_NAME,
    NAMED,
    ROLES,
    SHARER,
    TokenBook,
    TokenConfigError,
    new_token,
    token_item,
    valid_name,
)
from ledger.bootstrap import Purpose, open_system
from ledger.commands.common import allow_owner_option, db_option, printable_id, resolve_db
from ledger.config import ConfigError, Settings
from ledger.logs import get_logger

log = get_logger("ledger.serve")


def kafka_end_offsets(bootstrap: str, auth: dict[str, Any]) -> Any:
    """A function giving each partition's high watermark, or {} if Kafka does not answer.
    ``auth``: SASL settings of a principal allowed to DESCRIBE the topics (finance)."""

    def end_offsets(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        try:
            from kafka import KafkaConsumer, TopicPartition

            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                request_timeout_ms=5000,
                bootstrap_timeout_ms=3000,  # kafka-python 3.x; api_version_auto_timeout_ms is gone
                **auth,
            )
            try:
                ends = consumer.end_offsets([TopicPartition(t, p) for t, p in partitions])
            finally:
                consumer.close()
            return {(tp.topic, tp.partition): int(n) for tp, n in ends.items()}
        except Exception as exc:  # noqa: BLE001 - lag is best effort; offsets still shown
            log.warning("kafka end offsets unavailable", error=str(exc)[:300])
            return {}

    return end_offsets


@click.command()
@db_option
@allow_owner_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--kafka",
    "use_kafka",
    is_flag=True,
    help="publish finance commands and submitted events to Kafka "
    "(LEDGER_KAFKA_BOOTSTRAP) instead of applying them here",
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05),
    help="seconds between catch-ups of the views",
)
@click.option(
    "--queue",
    default=256,
    show_default=True,
    type=click.IntRange(0),
    help="requests that may wait for the database (each waits at most 5 s), in each of "
    "the two lanes (reads; writes: POST /events and finance commands); one more is "
    "answered 503 with Retry-After at once",
)
@click.pass_context
def serve(
    ctx: click.Context,
    db_url: str | None,
    allow_owner: bool,
    host: str,
    port: int,
    use_kafka: bool,
    interval: float,
    queue: int,
) -> None:
    """Serve the HTTP API (/docs, /openapi.json) and the finance dashboard (/dashboard/)."""
    import uvicorn

    from ledger.api.app import create_app, no_kafka
    from ledger.api.sink import Sink
    from ledger.web.pages import mount

    settings: Settings = ctx.obj
    try:
        tokens = TokenBook.parse(settings.api_tokens)
    except TokenConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    system = open_system(settings, resolve_db(ctx, db_url), Purpose.SERVE, allow_owner=allow_owner)
    system.view_interval = interval
    if not tokens.entries:
        click.echo(
            "warning: no API tokens configured (LEDGER_API_TOKENS): every request "
            "will be refused; make one with `ledger api-token finance`",
            err=True,
        )
    sink: Sink
    if use_kafka:
        from ledger.kafka.auth import client_options

        try:
            finance = client_options(settings, "finance")
            sink = system.sink(kafka=True)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        end_offsets = kafka_end_offsets(settings.kafka_bootstrap, finance)
    else:
        sink, end_offsets = system.sink(kafka=False), no_kafka
    app = mount(
        create_app(
            system.store,
            tokens,
            sink,
            end_offsets=end_offsets,
            follower=system.follower,
            queue=queue,
        ),
        locale=settings.locale,
    )
    click.echo(
        f"serving on http://{host}:{port}/ (dashboard: /dashboard/, API docs: /docs)", err=True
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        system.close()


@click.command("api-token")
@click.argument("role", type=click.Choice((*ROLES, SHARER)))
@click.option(
    "--sharer",
    "sharer_id",
    default=None,
    callback=printable_id,
    help="the sharer a sharer token reads (required for the sharer role, refused otherwise)",
)
@click.option(
    "--name",
    default=None,
    help="a finance token's name: who its redrives record as their author (finance:NAME)",
)
def api_token(role: str, sharer_id: str | None, name: str | None) -> None:
    """Make a new API token for ROLE: prints the token (give it to the user) and the
    LEDGER_API_TOKENS item to configure (its hash; append it, comma-separated). A sharer's
    token reads only that sharer's own data (/api/v1/me); a finance token may be named
    (--name alice), so its redrives say who made them."""
    if (role == SHARER) != (sharer_id is not None):
        raise click.UsageError("--sharer ID goes with the sharer role, and only with it")
    if name is not None and role != NAMED:
        raise click.UsageError("--name goes with the finance role, and only with it")
    if name is not None and not valid_name(name):
        raise click.UsageError(f"--name: 1 to {MAX_NAME} printable characters")
    token = new_token()
    click.echo(f"token: {token}")
    click.echo(f"LEDGER_API_TOKENS item: {token_item(role, token, sharer_id or name)}")
