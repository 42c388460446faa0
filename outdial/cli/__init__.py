"""The ``outdial`` command: one Typer app, one module per group of commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from outdial.cli import ops, run
from outdial.cli.breakers import breaker_app
from outdial.cli.call import call
from outdial.cli.campaigns import campaign_app
from outdial.cli.dnc import dnc_app
from outdial.cli.imports import import_command
from outdial.cli.jobs import jobs_app
from outdial.cli.keys import keys_app
from outdial.cli.plan import plan
from outdial.cli.status import export, status
from outdial.cli.up import demo, up


class _TranslatingGroup(TyperGroup):
    """The CLI's one translation of errors (:func:`outdial.cli.errors.explain`): a refusal, a bad
    setting or a service that does not answer is one line on stderr and an exit status
    (0 done, 1 refused or failed, 2 bad input or configuration), never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # click's Context (typer vendors click in some versions)
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from outdial.cli.errors import explain

            explained = explain(exc)
            if explained is None:
                raise  # a bug: its traceback is wanted
            message, status = explained
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(status) from None


app = typer.Typer(
    cls=_TranslatingGroup,
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
    help="Outbound AI-voice call campaigns.",
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
app.add_typer(jobs_app, name="jobs")
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
    load_env_file()


def load_env_file() -> None:
    """Read ``./.env`` (or the file ``OUTDIAL_ENV_FILE`` names) into the environment, as compose does.

    A variable already set wins. Every command, and every part ``outdial up`` starts,
    then sees the same settings and credentials from any shell.
    """
    path = Path(os.environ.get("OUTDIAL_ENV_FILE", ".env"))
    if path.is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def main() -> None:
    app()
