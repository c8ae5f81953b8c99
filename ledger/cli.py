"""The ``ledger`` command line. Each sub-command lives in its own module under
``ledger/commands/``; this module only assembles them."""

from __future__ import annotations

import importlib

import click

from ledger.config import load_settings
from ledger.logs import configure_logging

# module name -> click command attribute; modules are imported lazily so a missing
# optional stack (say, Kafka) never breaks unrelated commands.
COMMANDS = {
    "produce": "ledger.commands.produce:produce",
    "create-topics": "ledger.commands.topics:create_topics",
    "ingest": "ledger.commands.ingest:ingest",
    "verify": "ledger.commands.inspect:verify",
    "balances": "ledger.commands.inspect:balances",
    "dead-letters": "ledger.commands.inspect:dead_letters",
    "parked": "ledger.commands.inspect:parked",
    "consume": "ledger.commands.consume:consume",
    "demo": "ledger.commands.demo:demo",
    "project": "ledger.commands.views:project",
    "rebuild": "ledger.commands.views:rebuild",
    "check": "ledger.commands.views:check",
    "serve": "ledger.commands.serve:serve",
    "api-token": "ledger.commands.serve:api_token",
    "export": "ledger.commands.export:export",
    "replay": "ledger.commands.export:replay",
}


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        """Errors a user can fix get one clear line and exit 1, not a traceback."""
        from sqlalchemy.exc import OperationalError

        from ledger.config import ConfigError
        from ledger.store.base import StoreError

        try:
            return super().invoke(ctx)
        except (StoreError, ConfigError) as exc:
            raise click.ClickException(str(exc)) from exc
        except OperationalError as exc:
            first = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
            raise click.ClickException(
                f"cannot use the database: {first} (is the URL right and the server up? "
                "deploy/postgres/start.sh starts the project's own)"
            ) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # not built yet
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Commission ledger: ingest events, verify the hash chain, query balances."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    ctx.obj = settings
