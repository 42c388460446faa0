"""The ``outdial`` command: one Typer app, one module per group of commands."""

from __future__ import annotations

import typer

from outdial.cli import ops, run
from outdial.cli.breakers import breaker_app
from outdial.cli.call import call
from outdial.cli.plan import plan
from outdial.cli.up import demo, up

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Outbound AI-voice call campaigns.")
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
app.add_typer(breaker_app, name="breaker")


@app.callback()
def _root() -> None:
    """Outbound AI-voice call campaigns, scheduled in the callee's time."""


def main() -> None:
    app()
