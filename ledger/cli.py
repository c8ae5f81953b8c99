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
    "redrive": "ledger.commands.redrive:redrive",
    "parked": "ledger.commands.inspect:parked",
    "consume": "ledger.commands.consume:consume",
    "demo": "ledger.commands.demo:demo",
    "simulate": "ledger.commands.simulate:simulate",
    "keygen": "ledger.commands.checkpoint:keygen",
    "migrate": "ledger.commands.migrate:migrate",
    "checkpoint": "ledger.commands.checkpoint:checkpoint",
    "project": "ledger.commands.views:project",
    "rebuild": "ledger.commands.views:rebuild",
    "check": "ledger.commands.views:check",
    "serve": "ledger.commands.serve:serve",
    "api-token": "ledger.commands.serve:api_token",
    "export": "ledger.commands.export:export",
    "replay": "ledger.commands.export:replay",
}


class OneLineError(click.ClickException):
    """An error shown as one ``Error: …`` line on stderr (no usage block, no traceback)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        """Errors a user can fix get one clear line and a non-zero exit, not a traceback:
        bad arguments (exit 2), bad settings, a database that cannot be used, a file that
        cannot be read or must not be written (exit 1)."""
        from alembic.util.exc import CommandError
        from sqlalchemy.exc import DBAPIError

        from ledger.config import ConfigError
        from ledger.files import FileRefused
        from ledger.store.errors import StoreError

        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            command = f"ledger {ctx.invoked_subcommand}" if ctx.invoked_subcommand else "ledger"
            raise OneLineError(
                f"{exc.format_message()} (see `{command} --help`)", exc.exit_code
            ) from exc
        except (StoreError, ConfigError, FileRefused) as exc:
            raise OneLineError(str(exc)) from exc
        except DBAPIError as exc:
            raise OneLineError(database_message(exc)) from exc
        except CommandError as exc:  # Alembic: e.g. a revision this version does not know
            raise OneLineError(
                f"cannot migrate the database: {_first_line(exc)} "
                "(was it written by a newer version of the ledger?)"
            ) from exc
        except OSError as exc:
            raise OneLineError(_first_line(exc)) from exc

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
        command: click.Command = getattr(module, attr)
        return command


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def database_message(exc: BaseException) -> str:
    """One line for a database error, with a hint that fits the backend."""
    orig = getattr(exc, "orig", None)
    first = _first_line(orig if orig is not None else exc)
    from ledger.store.errors import database_hint

    backend = "sqlite" if type(orig).__module__.startswith("sqlite3") else "postgresql"
    return f"cannot use the database: {first} ({database_hint(backend)})"


def version_line() -> str:
    """The version, and which build of the domain runs (ledger/compiled.py)."""
    from importlib.metadata import version

    from ledger import compiled

    return f"ledger {version('commission-ledger')}; domain: {compiled.STATUS}"


@click.group(cls=LazyGroup)
@click.version_option(message="%(version)s", version=version_line())
@click.pass_context
def main(ctx: click.Context) -> None:
    """Commission ledger: ingest events, verify the hash chain, query balances."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    ctx.obj = settings
