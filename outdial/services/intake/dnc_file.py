"""Numbers for the do-not-call list, from a file: one per line, or a CSV with a phone column.

A file whose first row names a phone column (the names the lead import
knows) is read as CSV and only that column is used; otherwise every line is
one number. Blank lines and lines starting with ``#`` are skipped in both.
Streamed, in bounded memory, like lead files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from outdial.errors import InputError
from outdial.services.intake.csv_table import Table, normalise_name
from outdial.services.intake.lead_columns import PHONE_COLUMNS
from outdial.services.intake.phones import PhoneError, normalise


class PhoneColumnMissing(InputError):
    pass


@dataclass(frozen=True)
class Entry:
    row: int  # the file's row (line, for a plain list); a CSV header is row 1
    raw: str
    phone: str | None  # E.164, or None when ``raw`` is not a valid number
    reason: str | None = None


def read_numbers(source: BinaryIO, region: str | None, phone_column: str | None = None) -> Iterator[Entry]:
    """Every number in the file, normalised; raises :class:`outdial.services.intake.csv_table.UnreadableTable`."""
    wanted = (normalise_name(phone_column),) if phone_column else PHONE_COLUMNS
    table = Table(source, wanted)
    names = [normalise_name(h) for h in table.header]
    column = next((names.index(w) for w in wanted if w in names), None)
    if column is None and phone_column:
        raise PhoneColumnMissing(f"no column named {phone_column!r}; the header has: {', '.join(table.header)}")
    if column is None:
        # A plain list: the "header" is the first number.
        if not table.header[0].strip().startswith("#"):
            yield _entry(1, table.header[0], region)
        for row, _line, fields in table:
            if not fields[0].strip().startswith("#"):
                yield _entry(row, fields[0], region)
        return
    for row, _line, fields in table:
        if not fields[0].strip().startswith("#"):
            yield _entry(row, fields[column] if column < len(fields) else "", region)


def _entry(row: int, raw: str, region: str | None) -> Entry:
    text = raw.strip()
    try:
        phone, _zones = normalise(text, region)
    except PhoneError as exc:
        return Entry(row, text, None, str(exc))
    return Entry(row, text, phone)
