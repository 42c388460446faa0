"""Import a CSV lead file into a campaign: the ``outdial import`` command and the API's upload.

The file is streamed: records are read and checked here, their numbers are
normalised in chunks on a process pool, each lead's first due time comes
from a small cache of admissions, and batches are written by
:class:`outdial.services.intake.import_writer.ImportWriter` on its own thread, in one
transaction on PostgreSQL, a transaction per batch on SQLite. Memory stays bounded by
a few chunks, whatever the file's size.

Counts: every data row is exactly one of accepted, rejected (a bad row,
named with its reason in the report), duplicate (its number is already in
the campaign, or on an earlier row of the file) or suppressed (its number is
on the do-not-call list), so ``rows = accepted + rejected + duplicates +
suppressed``. A file that cannot be read as a whole (unreadable, not UTF-8,
no phone column) raises :class:`ImportFailed` and imports nothing: the
transaction is only committed once the last row has been read.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine

from outdial.errors import InputError, NotFound
from outdial.models import CampaignState
from outdial.services.intake.admissions import Admissions, NumberedAdmission
from outdial.services.intake.csv_table import Table, UnreadableTable, normalise_name
from outdial.services.intake.import_writer import Batch, ImportWriter
from outdial.services.intake.lead_columns import PHONE_COLUMNS, HeaderError, Layer, LeadColumns, RowError, read_header
from outdial.services.intake.phone_pool import PhonePool, Validated, worker_count
from outdial.services.intake.phones import PhoneError, known_region
from outdial.services.intake.report import RejectReport
from outdial.services.timing.spec import SpecError
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store.lead_import import AdmissionRow, BatchRow, WritePath

CHUNK_ROWS = 10_000


class ImportFailed(InputError):
    """The whole file was refused; the message is the one-line reason."""


@dataclass
class ImportSummary:
    rows: int
    accepted: int
    rejected: int
    duplicates: int
    suppressed: int
    report: str | None  # the report CSV's path; None when no row was rejected
    # PostgreSQL: whether the write ran with the foreign-key checks (not in as_dict: how, not what).
    write_path: WritePath | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "report": self.report,
        }


# A record waiting for its number: (row, line, raw phone, variables JSON, timing layer),
# or a record already refused: (row, line, raw phone, reason, None).
_Pending = tuple[int, int, str, str, Layer | None]


def _phones(chunk: list[_Pending]) -> list[str]:
    return [raw if layer is not None else "" for _row, _line, raw, _v, layer in chunk]


def import_csv(
    engine: Engine,
    settings: Settings,
    campaign_name: str,
    source: Path | BinaryIO,
    *,
    default_region: str | None = None,
    phone_column: str | None = None,
    report_path: Path | None = None,
    now: datetime | None = None,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportSummary:
    """Import ``source`` into the campaign named ``campaign_name``; raises :class:`ImportFailed`.

    ``on_progress`` is called after each chunk of rows (about every ``CHUNK_ROWS``) with the counts so far.
    """
    now = now or datetime.now(UTC)
    try:
        region = known_region(default_region) if default_region else None
    except PhoneError as exc:
        raise ImportFailed(f"default region: {exc}") from None
    with engine.connect() as conn:
        campaign = campaign_store.by_name(conn, campaign_name)
    if campaign is None:
        raise NotFound(f"no campaign named {campaign_name!r} (outdial campaign create NAME --account ...)")
    if campaign.state == CampaignState.CANCELLED:
        raise ImportFailed(f"campaign {campaign_name!r} is cancelled")

    wanted = PHONE_COLUMNS + ((normalise_name(phone_column),) if phone_column else ())
    with _opened(source) as stream:
        try:
            table = Table(stream, wanted)
            columns = read_header(table.header, phone_column)
        except (UnreadableTable, HeaderError) as exc:
            raise ImportFailed(str(exc)) from None
        report = RejectReport(report_path or _default_report_path(source, settings, campaign_name, now))
        writer = ImportWriter(engine, campaign, now)
        run = _Run(columns, report, Admissions(campaign.timing, now, settings), writer, on_progress)
        try:
            with PhonePool(region) as pool:
                run.read(table, pool)
            writer.commit()
        except UnreadableTable as exc:
            writer.abort()
            report.discard()
            raise ImportFailed(str(exc)) from None
        except BaseException:
            writer.abort()
            report.discard()
            raise
        path = report.finish()
    valid = run.valid
    return ImportSummary(
        rows=run.rows,
        accepted=writer.accepted,
        rejected=report.count,
        duplicates=valid - writer.accepted - writer.suppressed,
        suppressed=writer.suppressed,
        report=str(path) if path is not None else None,
        write_path=writer.write_path,
    )


@dataclass(frozen=True)
class ImportProgress:
    """An import so far: rows read, and of them accepted (written) and rejected."""

    rows: int
    accepted: int
    rejected: int


class _Run:
    """One import's reading side: records to checked leads to batches."""

    def __init__(
        self,
        columns: LeadColumns,
        report: RejectReport,
        admissions: Admissions,
        writer: ImportWriter,
        on_progress: Callable[[ImportProgress], None] | None = None,
    ) -> None:
        self.columns = columns
        self.report = report
        self.admissions = admissions
        self.writer = writer
        self.on_progress = on_progress
        self.rows = 0
        self.valid = 0

    def _put(self, batch: Batch) -> None:
        self.writer.put(batch)
        if self.on_progress is not None:
            # The writer's count trails by the batches still in its queue.
            self.on_progress(ImportProgress(self.rows, self.writer.accepted, self.report.count))

    def read(self, table: Table, pool: PhonePool) -> None:
        columns = self.columns
        width, phone_at = columns.width, columns.phone
        in_flight: deque[tuple[Future[Validated], list[_Pending]]] = deque()
        most_in_flight = 2 * worker_count()
        chunk: list[_Pending] = []
        for row, line, fields in table:
            self.rows += 1
            # Rows refused here still travel with their chunk, so the report lists every
            # bad row in file order.
            if len(fields) != width:
                phone = fields[phone_at] if phone_at < len(fields) else ""
                chunk.append((row, line, phone, f"expected {width} fields, found {len(fields)}", None))
            elif not fields[phone_at].strip():
                chunk.append((row, line, "", f"{columns.phone_name}: the phone number is empty", None))
            else:
                try:
                    layer = columns.layer(fields)
                except RowError as exc:
                    chunk.append((row, line, fields[phone_at], str(exc), None))
                else:
                    chunk.append((row, line, fields[phone_at], columns.variables_json(fields), layer))
            if len(chunk) >= CHUNK_ROWS:
                in_flight.append((pool.submit(_phones(chunk)), chunk))
                chunk = []
                while len(in_flight) > most_in_flight:
                    self._put(self._batch(*in_flight.popleft()))
        if chunk:
            in_flight.append((pool.submit(_phones(chunk)), chunk))
        while in_flight:
            self._put(self._batch(*in_flight.popleft()))

    def _batch(self, future: Future[Validated], chunk: list[_Pending]) -> Batch:
        """A chunk's leads with their numbers and admissions, the batch's repeats folded into copies."""
        reject, admissions = self.report.reject, self.admissions
        cached = admissions.cached
        rows: list[tuple[int, str, str, int]] = []
        copies: list[int] = []
        first: dict[str, int] = {}
        for (row, line, raw, variables, layer), result in zip(chunk, future.result(), strict=True):
            if layer is None:  # refused while reading; ``variables`` holds the reason
                reject(row, line, raw, variables)
                continue
            if isinstance(result, str):
                reject(row, line, raw, f"{self.columns.phone_name}: {result}")
                continue
            e164, zones = result
            admission = cached.get((layer.key, zones))
            if admission is None:
                try:
                    admission = admissions.get(layer.key, layer.timing, layer.timing_json, zones, e164)
                except SpecError as exc:
                    reject(row, line, raw, str(exc))
                    continue
            self.valid += 1
            at = first.get(e164)
            if at is None:
                first[e164] = len(rows)
                rows.append((row, e164, variables, admission.id))
                copies.append(1)
            else:
                copies[at] += 1
        batch_rows: list[BatchRow] = [
            (row, n, e164, variables, admission)
            for (row, e164, variables, admission), n in zip(rows, copies, strict=True)
        ]
        return Batch(batch_rows, [admission_row(a) for a in admissions.take_new()])


def admission_row(numbered: NumberedAdmission) -> AdmissionRow:
    """The row the import writes for a lead's first due time (shared by every lead it fits)."""
    a = numbered.admission
    return AdmissionRow(
        id=numbered.id,
        lead_timing_json=numbered.lead_timing_json,
        job_timing_json=numbered.job_timing_json,
        state=a.state,
        priority=a.priority,
        next_due_at=a.next_due_at,
        window_end=a.window_end,
        reason=a.reason,
    )


@contextmanager
def _opened(source: Path | BinaryIO) -> Iterator[BinaryIO]:
    if not isinstance(source, Path):
        yield source
        return
    try:
        stream = source.open("rb")
    except OSError as exc:
        raise ImportFailed(f"cannot read {source}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def _default_report_path(source: Path | BinaryIO, settings: Settings, campaign: str, now: datetime) -> Path:
    """Beside the file (``leads.csv`` -> ``leads.report.csv``); uploads under the data directory."""
    if isinstance(source, Path):
        return source.with_name(source.stem + ".report.csv")
    return data_dir_report(settings, campaign, now)


def data_dir_report(settings: Settings, label: str, now: datetime) -> Path:
    """A new report's path under the data directory, named after ``label`` and the moment."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
    return settings.data_dir / "reports" / f"import-{safe}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.report.csv"
