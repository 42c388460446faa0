"""``outdial import FILE --campaign NAME``: a CSV lead file into a campaign."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from outdial.cli.campaigns import fail, open_engine


def import_command(
    file: Path = typer.Argument(..., help="The lead file: CSV (comma, semicolon, tab or pipe), UTF-8."),
    campaign: str = typer.Option(..., "--campaign", help="The campaign the leads join."),
    default_region: str | None = typer.Option(
        None, "--default-region", help="Region (IN, US, ...) for numbers written without a country code."
    ),
    phone_column: str | None = typer.Option(
        None, "--phone-column", help="The column holding the numbers (default: phone, phone_number, to_number, ...)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Import leads; bad rows are listed with their reasons in FILE's .report.csv.

    Every data row is counted once: accepted, rejected (see the report),
    duplicate (already in the campaign or earlier in the file) or suppressed
    (on the do-not-call list). A file that cannot be read at all imports nothing.
    """
    from outdial.services.intake.csv_import import ImportFailed, import_csv
    from outdial.settings import get_settings

    try:
        summary = import_csv(
            open_engine(), get_settings(), campaign, file, default_region=default_region, phone_column=phone_column
        )
    except ImportFailed as exc:
        raise fail(str(exc), 1) from None
    if json_out:
        typer.echo(json.dumps(summary.as_dict()))
        return
    typer.echo(
        f"{summary.rows} rows: {summary.accepted} accepted, {summary.rejected} rejected, "
        f"{summary.duplicates} duplicates, {summary.suppressed} on the do-not-call list"
    )
    if summary.rejected:
        typer.echo(f"rejected rows and reasons: {summary.report}")
