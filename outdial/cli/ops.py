"""Commands for operators: ``flower`` (watch the tasks) and ``doctor`` (what is wrong, and the fix)."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def flower(
    host: str = typer.Option(None, "--host", help="Address to listen on (default OUTDIAL_FLOWER_HOST)."),
    port: int = typer.Option(None, "--port", help="Port to listen on (default OUTDIAL_FLOWER_PORT)."),
    basic_auth: str = typer.Option(
        None,
        "--basic-auth",
        help="user:password (comma-separate several). Better from OUTDIAL_FLOWER_BASIC_AUTH: "
        "a command line is visible to every user of the machine.",
        show_default=False,
    ),
) -> None:
    """Flower, the Celery dashboard, on outdial's broker: every dispatch task from the moment it is sent."""
    from flower.events import EventsState

    from outdial.settings import get_settings
    from outdial.worker.app import app
    from outdial.worker.shown import ShownTask

    # Flower keeps each task as a ShownTask: a sender's raw arguments never replace the worker's lines.
    EventsState.Task = ShownTask
    settings = get_settings()
    host = host or settings.flower_host
    auth = basic_auth or (settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else None)
    if not auth and host not in LOOPBACK:
        # Flower can revoke tasks and shut workers down: never open to a network without a password.
        typer.echo(f"refusing to serve Flower on {host} without basic auth: export OUTDIAL_FLOWER_BASIC_AUTH=user:pass")
        raise typer.Exit(2)
    # Given to Flower inside this process, so the password never shows in the process list.
    argv = ["flower", f"--address={host}", f"--port={port or settings.flower_port}", "--purge_offline_workers=300"]
    if auth:
        argv.append(f"--basic-auth={auth}")
    app.start(argv)


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Check the settings, accounts, database, migrations and Redis; print what to fix. Exit 1 if anything is wrong."""
    from outdial.doctor import run_checks
    from outdial.settings import get_settings

    checks = run_checks(get_settings())
    failed = [c for c in checks if not c.ok]
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for check in checks:
            typer.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
            if check.fix:
                typer.echo(f"      fix: {check.fix}")
        typer.echo("everything is in order" if not failed else f"{len(failed)} problem(s) to fix")
    if failed:
        raise typer.Exit(1)
