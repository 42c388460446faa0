"""``outdial import FILE --campaign NAME``: a CSV lead file into a campaign."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from outdial.cli.campaigns import open_engine


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
    summary = import_csv(
        open_engine(),
        settings,
        campaign,
        file,
        default_region=default_region,
        phone_column=phone_column,
        report_path=report,
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
