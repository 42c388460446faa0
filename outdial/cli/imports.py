"""``outdial import FILE --campaign NAME``: a CSV lead file into a campaign."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from outdial.cli.campaigns import open_engine

if TYPE_CHECKING:
    from outdial.services.intake.csv_import import ImportProgress


def import_command(
    file: Path = typer.Argument(..., help="The lead file: CSV (comma, semicolon, tab or pipe), UTF-8."),
    campaign: str = typer.Option(..., "--campaign", help="The campaign the leads join."),
    default_region: str | None = typer.Option(
        None, "--default-region", help="Region (IN, US, ...) for numbers written without a country code."
    ),
    phone_column: str | None = typer.Option(
        None, "--phone-column", help="The column holding the numbers (default: phone, phone_number, to_number, ...)."
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Where to write the rejected rows and their reasons (default: a new file under the data directory's "
        "reports/, so importing never writes beside the lead file).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Import leads; bad rows are listed with their reasons in a report CSV (its path is printed).

    Every data row is counted once: accepted, rejected (see the report),
    duplicate (already in the campaign or earlier in the file) or suppressed
    (on the do-not-call list). A file that cannot be read at all imports nothing.
    """
    from datetime import UTC, datetime

    from outdial.services.intake.csv_import import data_dir_report, import_csv
    from outdial.settings import get_settings

    settings = get_settings()
    report = report or data_dir_report(settings, f"{campaign}-{file.stem}", datetime.now(UTC))
    with _progress(quiet=json_out) as on_progress:
        summary = import_csv(
            open_engine(),
            settings,
            campaign,
            file,
            default_region=default_region,
            phone_column=phone_column,
            report_path=report,
            on_progress=on_progress,
        )
    if json_out:
        typer.echo(json.dumps(summary.as_dict()))
        return
    typer.echo(
        f"{summary.rows} rows: {summary.accepted} accepted, {summary.rejected} rejected, "
        f"{summary.duplicates} duplicates, {summary.suppressed} on the do-not-call list"
    )
    if summary.rejected:
        typer.echo(f"rejected rows and reasons: {summary.report}")


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[ImportProgress], None] | None]:
    """On a terminal, a Rich bar (rows read, rows/s, accepted and rejected so far; the total is not
    known before the end, so the bar pulses);
    elsewhere a plain line on stderr every few seconds, so a log or a pipe still shows progress."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    started = time.monotonic()
    if not console.is_terminal:
        last = [started]

        def plain(p: ImportProgress) -> None:
            now = time.monotonic()
            if now - last[0] >= PLAIN_EVERY_S:
                last[0] = now
                rate = p.rows / max(now - started, 1e-9)
                print(
                    f"imported {p.rows} rows ({rate:.0f}/s): {p.accepted} accepted, {p.rejected} rejected",
                    file=sys.stderr,
                )

        yield plain
        return
    columns = (
        TextColumn("[bold]importing"),
        BarColumn(),
        TextColumn("{task.fields[rows]} rows, {task.fields[rate]:.0f}/s"),
        TextColumn("[green]{task.fields[accepted]} accepted[/] [red]{task.fields[rejected]} rejected[/]"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("import", total=None, rows=0, rate=0.0, accepted=0, rejected=0)

        def update(p: ImportProgress) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            rate = p.rows / elapsed
            bar.update(task, completed=p.rows, rows=p.rows, rate=rate, accepted=p.accepted, rejected=p.rejected)

        yield update
        bar.update(task, total=bar.tasks[0].completed)  # done: a full bar


# Off a terminal, a progress line this often.
PLAIN_EVERY_S = 5.0
