"""The ``outdial`` command: one Typer app, one module per group of commands."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from outdial import errors
from outdial.cli import ops, run
from outdial.cli.breakers import breaker_app
from outdial.cli.call import call
from outdial.cli.campaigns import campaign_app
from outdial.cli.dnc import dnc_app
from outdial.cli.imports import import_command
from outdial.cli.keys import keys_app
from outdial.cli.plan import plan
from outdial.cli.status import export, status
from outdial.cli.up import demo, up

# Exit statuses: 0 done; 1 refused as things stand (not found, a conflict, a failed check);
# 2 the command's input or the configuration is wrong (fix it and run again).
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


def exit_code(exc: errors.OutdialError) -> int:
    return EXIT_BAD_INPUT if isinstance(exc, errors.InputError | errors.ConfigError) else EXIT_REFUSED


class _TranslatingGroup(TyperGroup):
    """The CLI's one translation of outdial's errors: one line on stderr and an exit status."""

    def invoke(self, ctx: Any) -> Any:  # click's Context (typer vendors click in some versions)
        try:
            return super().invoke(ctx)
        except errors.OutdialError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exit_code(exc)) from None


app = typer.Typer(
    cls=_TranslatingGroup, no_args_is_help=True, add_completion=False, help="Outbound AI-voice call campaigns."
)
app.command()(up)
app.command()(demo)
app.command()(run.scheduler)
app.command()(run.worker)
app.command()(run.api)
app.command()(run.simulator)
app.command()(plan)
app.command()(call)
app.command()(ops.flower)
app.command()(ops.doctor)
app.add_typer(run.db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(dnc_app, name="dnc")
app.command("import")(import_command)
app.add_typer(breaker_app, name="breaker")
app.command()(status)
app.command()(export)
app.add_typer(keys_app, name="keys")


def _print_version(asked: bool) -> None:
    if asked:
        from outdial import __version__

        typer.echo(f"outdial {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Outbound AI-voice call campaigns, scheduled in the callee's time."""


def main() -> None:
    app()
