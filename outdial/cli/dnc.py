"""``outdial dnc add|remove|list``: the do-not-call list, checked at import and again at dial time."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from outdial.cli.campaigns import open_engine
from outdial.errors import InputError

if TYPE_CHECKING:
    from outdial.services.intake.dnc_file import Entry

dnc_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The do-not-call list.")

BATCH = 1000
SHOWN_INVALID = 20  # invalid entries printed; the count covers them all


def _region(default_region: str | None) -> str | None:
    from outdial.services.intake.phones import PhoneError, known_region

    try:
        return known_region(default_region) if default_region else None
    except PhoneError as exc:
        raise InputError(exc.reason, field="--default-region") from None


def _batches(entries: Iterable[Entry], size: int = BATCH) -> Iterator[list[Entry]]:

    batch: list[Entry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _report(action: str, done: int, valid: int, invalid: list[Entry], invalid_count: int, json_out: bool) -> None:
    if json_out:
        typer.echo(
            json.dumps(
                {
                    action: done,
                    "numbers": valid,
                    "invalid": invalid_count,
                    "invalid_rows": [{"row": e.row, "value": e.raw, "reason": e.reason} for e in invalid],
                }
            )
        )
    else:
        typer.echo(f"{done} {action} ({valid} valid numbers read, {invalid_count} invalid)")
        for e in invalid:
            typer.echo(f"  row {e.row}: {e.reason}", err=True)
        if invalid_count > len(invalid):
            typer.echo(f"  ... and {invalid_count - len(invalid)} more", err=True)
    if invalid_count:
        raise typer.Exit(1)


@dnc_app.command("add")
def add(
    file: Path = typer.Argument(..., help="One number per line, or a CSV with a phone column."),
    default_region: str | None = typer.Option(None, "--default-region", help="Region for national formats (IN)."),
    phone_column: str | None = typer.Option(None, "--phone-column", help="The CSV column holding the numbers."),
    source: str | None = typer.Option(None, "--source", help="Where the list came from (default: the file name)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add numbers to the do-not-call list; invalid entries are listed and make the exit status 1."""
    from outdial.services.intake.dnc_file import read_numbers
    from outdial.store import dnc as dnc_store

    region = _region(default_region)
    engine = open_engine()
    now = datetime.now(UTC)
    added = valid = invalid_count = 0
    invalid: list[Entry] = []
    try:
        with file.open("rb") as stream, engine.begin() as conn:
            for batch in _batches(read_numbers(stream, region, phone_column)):
                phones = [e.phone for e in batch if e.phone is not None]
                for e in batch:
                    if e.phone is None:
                        invalid_count += 1
                        if len(invalid) < SHOWN_INVALID:
                            invalid.append(e)
                valid += len(phones)
                added += dnc_store.add(conn, phones, source or file.name, now)
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None
    _report("added", added, valid, invalid, invalid_count, json_out)


@dnc_app.command("remove")
def remove(
    items: list[str] = typer.Argument(..., help="Numbers, or files of numbers (as for add)."),
    default_region: str | None = typer.Option(None, "--default-region", help="Region for national formats (IN)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Take numbers off the do-not-call list."""
    from outdial.services.intake.dnc_file import Entry, read_numbers
    from outdial.services.intake.phones import PhoneError, normalise
    from outdial.store import dnc as dnc_store

    region = _region(default_region)
    entries: list[Entry] = []
    try:
        for item in items:
            path = Path(item)
            if path.is_file():
                with path.open("rb") as stream:
                    entries.extend(read_numbers(stream, region))
            else:
                try:
                    entries.append(Entry(0, item, normalise(item, region)[0]))
                except PhoneError as exc:
                    entries.append(Entry(0, item, None, str(exc)))
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
    phones = [e.phone for e in entries if e.phone is not None]
    bad = [e for e in entries if e.phone is None]
    removed = 0
    with open_engine().begin() as conn:
        for start in range(0, len(phones), BATCH):
            removed += dnc_store.remove(conn, phones[start : start + BATCH])
    _report("removed", removed, len(phones), bad[:SHOWN_INVALID], len(bad), json_out)


@dnc_app.command("list")
def list_numbers(json_out: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> None:
    """Every number on the do-not-call list, with where it came from."""
    from outdial.store import dnc as dnc_store

    with open_engine().connect() as conn:
        numbers = dnc_store.all_numbers(conn)
    if json_out:
        typer.echo(json.dumps([{"phone": p, "source": s, "added_at": at.isoformat()} for p, s, at in numbers]))
        return
    for phone, source, at in numbers:
        typer.echo(f"{phone}\t{source or ''}\t{at.isoformat()}")
