"""A campaign's jobs as CSV, one row per job, safe to open in a spreadsheet.

Values that came from lead files or callers (variables above all) may start
with ``=``, ``+``, ``-`` or ``@``, which spreadsheets run as formulas
(``=HYPERLINK(...)`` can leak data or lure a click). Such a cell gets a leading
apostrophe, which spreadsheets show as text. So does a cell in which ``;`` or
``,`` (spreadsheets split cells on either when importing text) is followed by
one of them (``a;=cmd|' /C calc'!A0``), spaces allowed between. A plain number
(``+14155550123``, ``-3``) is left alone: as a formula it is only itself, and
phone numbers stay readable and re-importable.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Connection, Engine

from outdial.services.jobs import RESULT_FIELDS, attempt_view
from outdial.store import AnyRow
from outdial.store import jobs as job_store
from outdial.store import progress as progress_store

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
# A formula start after a separator a spreadsheet may split the cell on.
_AFTER_SEPARATOR = re.compile(r"[;,]\s*[=+\-@\t\r]")
PAGE = 2000

FIXED_COLUMNS = (
    "job_id",
    "lead_id",
    "round",
    "to_number",
    "state",
    "outcome",
    "attempts",
    "provider_call_ids",
    "reason",
    "next_due_at",
    "state_changed_at",
    "created_at",
    # What the provider said about the newest attempt, and its result data where kept.
    "raw_status",
    *RESULT_FIELDS,
)


def neutralise(value: str) -> str:
    """The cell as a spreadsheet will show it as text, never run it as a formula."""
    if value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    if _AFTER_SEPARATOR.search(value):
        return "'" + value
    return value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def variable_columns(keys: Iterable[str]) -> list[tuple[str, str]]:
    """``(header, variable)`` per variable; one named like a fixed column is prefixed ``var:``."""
    return [(f"var:{k}" if k in FIXED_COLUMNS else k, k) for k in keys]


def job_row(
    job: AnyRow, call_ids: list[str], variables: list[tuple[str, str]], latest: AnyRow | None = None
) -> list[str]:
    values = [
        job.id,
        job.lead_id,
        job.round,
        job.to_number,
        job.state,
        job.last_outcome,
        job.attempts_used,
        " ".join(call_ids),
        job.reason,
        job.next_due_at,
        job.state_changed_at,
        job.created_at,
    ]
    result = attempt_view(latest)
    values += [result.get(name) for name in FIXED_COLUMNS[len(values) :]]
    own = job.variables or {}
    values += [own.get(name) for _, name in variables]
    return [neutralise(cell(v)) for v in values]


def _variable_keys(conn: Connection, campaign_id: int) -> list[str]:
    # A first pass over the variables only: the header must name every variable
    # before the first row is written, and rows are streamed, not held.
    seen: dict[str, None] = {}
    for page in progress_store.variable_pages(conn, campaign_id, PAGE):
        for variables in page:
            for key in variables:
                seen.setdefault(str(key), None)
    return list(seen)


def rows(conn: Connection, campaign_id: int) -> Iterator[list[str]]:
    """The header, then one row per job of the campaign in job id order."""
    variables = variable_columns(_variable_keys(conn, campaign_id))
    yield [neutralise(h) for h in (*FIXED_COLUMNS, *(header for header, _ in variables))]
    for page in progress_store.job_pages(conn, campaign_id, PAGE):
        ids = [int(j.id) for j in page]
        call_ids = progress_store.call_ids_of(conn, ids)
        latest = job_store.latest_attempts(conn, ids)
        for job in page:
            yield job_row(job, call_ids.get(int(job.id), []), variables, latest.get(int(job.id)))


def stream_csv(engine: Engine, campaign_id: int, chunk_chars: int = 64 * 1024) -> Iterator[str]:
    """The export as text chunks, for a streamed HTTP response: memory stays one page of jobs."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    with engine.connect() as conn:
        for row in rows(conn, campaign_id):
            writer.writerow(row)
            if buffer.tell() >= chunk_chars:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def write_csv(conn: Connection, campaign_id: int, out: TextIO) -> int:
    """Write the campaign's export to ``out``; the number of jobs written."""
    writer = csv.writer(out)
    produced = rows(conn, campaign_id)
    writer.writerow(next(produced))
    written = 0
    for row in produced:
        writer.writerow(row)
        written += 1
    return written
