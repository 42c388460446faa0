"""The ``outdial`` command: one Typer app, one module per group of commands."""

from __future__ import annotations

import typer

from outdial.cli.plan import plan

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Outbound AI-voice call campaigns.")
app.command()(plan)


@app.callback()
def _root() -> None:
    """Outbound AI-voice call campaigns, scheduled in the callee's time."""


def main() -> None:
    app()
