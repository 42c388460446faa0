"""Lead lists uploaded over HTTP: stored and checked at once, imported later by a worker.

An upload is answered as soon as its file is stored under the data directory
and known to be readable as a whole (UTF-8, a header with a phone column):
what would make the import refuse the whole file is still refused in the
request. The rows are then imported by the ``outdial.run_import`` task with
:func:`run_upload`, the same import as ``outdial import``, which writes its
progress into the ``imports`` row as it goes. The API and the workers must
therefore share the data directory (docker-compose.yml mounts one volume on
both).

An import whose task never reaches a worker (a broker that lost it, an API
that died before sending it) or whose worker died is found by the leading
scheduler's :func:`sweep_lost`: its task is sent again a few times, and then
it fails with a reason a person reads, rather than staying queued forever.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine

from outdial.errors import Conflict, InputError
from outdial.models import CampaignState, ImportState
from outdial.services.campaigns import find
from outdial.services.intake.csv_import import ImportFailed, ImportProgress, import_csv
from outdial.services.intake.csv_table import Table, UnreadableTable, check_encoding, normalise_name
from outdial.services.intake.lead_columns import PHONE_COLUMNS, HeaderError, read_header
from outdial.services.intake.phones import PhoneError, known_region
from outdial.services.requests import ImportOptions
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import imports as import_store

_COPY_BYTES = 1 << 20


def upload_path(settings: Settings, import_id: str) -> Path:
    return settings.data_dir / "uploads" / f"{import_id}.csv"


def report_path(settings: Settings, import_id: str) -> Path:
    return settings.data_dir / "reports" / f"upload-{import_id}.report.csv"


@dataclass(frozen=True)
class Upload:
    """An upload accepted for import: its id and campaign."""

    import_id: str
    campaign: str


def accept_upload(
    engine: Engine,
    settings: Settings,
    campaign_name: str,
    source: BinaryIO,
    options: ImportOptions,
    *,
    file_name: str | None,
    uploaded_by: str | None,
    now: datetime,
) -> Upload:
    """Store ``source`` for the campaign's next import and record it as queued.

    Raises :class:`ImportFailed` for a file the import would refuse as a whole,
    :class:`outdial.errors.NotFound` and :class:`outdial.errors.Conflict` for a
    missing or cancelled campaign; nothing is kept then.
    """
    if options.default_region:
        try:
            known_region(options.default_region)
        except PhoneError as exc:
            raise ImportFailed(f"default region: {exc}") from None
    with engine.connect() as conn:
        campaign = find(conn, campaign_name)
    if campaign.state == CampaignState.CANCELLED:
        raise Conflict(f"campaign {campaign_name!r} is cancelled")
    import_id = uuid.uuid4().hex
    stored = upload_path(settings, import_id)
    stored.parent.mkdir(parents=True, exist_ok=True)
    try:
        with stored.open("wb") as out:
            shutil.copyfileobj(source, out, _COPY_BYTES)
        _check_readable(stored, options.phone_column)
        with engine.begin() as conn:
            import_store.create(
                conn, import_id, campaign.id, file_name, options.model_dump(exclude_none=True), uploaded_by, now
            )
    except BaseException:
        stored.unlink(missing_ok=True)
        raise
    return Upload(import_id, campaign.name)


def _check_readable(path: Path, phone_column: str | None) -> None:
    wanted = PHONE_COLUMNS + ((normalise_name(phone_column),) if phone_column else ())
    try:
        with path.open("rb") as stream:
            check_encoding(stream)
            stream.seek(0)
            read_header(Table(stream, wanted).header, phone_column)
    except (UnreadableTable, HeaderError) as exc:
        raise ImportFailed(str(exc)) from None


def run_upload(engine: Engine, settings: Settings, import_id: str) -> AnyRow | None:
    """Import a stored upload, recording progress and then the summary or the reason it failed.

    Returns the import as it ended; an import that had already ended, or that a live run holds
    (its heartbeat younger than ``import_stale_s``), is left as it is and returned as found (a
    task delivered twice imports once). Errors other than a refusal of the file (a database
    away) propagate with the import left running, for the task to be retried, or for the
    scheduler's sweep once its heartbeat is stale.
    """
    now = datetime.now(UTC)
    with engine.begin() as conn:
        started = import_store.start(conn, import_id, now, now - timedelta(seconds=settings.import_stale_s))
        found = import_store.by_id(conn, import_id)
    if found is None or not started:
        return found
    stored = upload_path(settings, import_id)

    def progress(so_far: ImportProgress) -> None:
        with engine.begin() as conn:
            import_store.record_progress(
                conn, import_id, so_far.rows, so_far.accepted, so_far.rejected, datetime.now(UTC)
            )

    if not stored.is_file():
        give_up(engine, settings, import_id, f"the uploaded file is no longer in {stored.parent}; upload it again")
    else:
        try:
            summary = import_csv(
                engine,
                settings,
                found.campaign,
                stored,
                default_region=found.options.get("default_region"),
                phone_column=found.options.get("phone_column"),
                report_path=report_path(settings, import_id),
                on_progress=progress,
            )
        except InputError as exc:
            give_up(engine, settings, import_id, str(exc))
        else:
            counts = {k: v for k, v in summary.as_dict().items() if isinstance(v, int)}
            with engine.begin() as conn:
                import_store.finish(conn, import_id, counts, summary.report is not None, datetime.now(UTC))
        stored.unlink(missing_ok=True)
    with engine.connect() as conn:
        return import_store.by_id(conn, import_id)


def give_up(engine: Engine, settings: Settings, import_id: str, reason: str) -> None:
    """End an import that will not run, with the reason a person reads in ``GET /imports/{id}``,
    and delete its stored file: nothing will read it again."""
    with engine.begin() as conn:
        ended = import_store.fail(conn, import_id, reason, datetime.now(UTC))
    if ended:
        upload_path(settings, import_id).unlink(missing_ok=True)


def withdraw(engine: Engine, settings: Settings, import_id: str, reason: str) -> bool:
    """End an import whose task could not be sent, and delete its stored file, if it is still
    queued. False when a worker has taken it already: the send went through after all."""
    with engine.begin() as conn:
        ended = import_store.fail(conn, import_id, reason, datetime.now(UTC), states=(ImportState.QUEUED,))
    if ended:
        upload_path(settings, import_id).unlink(missing_ok=True)
    return ended


@dataclass
class LostImports:
    """What one sweep did: imports whose task is to be sent again, and imports it ended."""

    resend: list[Upload] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def sweep_lost(engine: Engine, settings: Settings, now: datetime, limit: int) -> LostImports:
    """Find imports whose task was lost, and count a new send for each, or end those sent too often.

    Lost: queued with no task sent for ``import_queued_lease_s``, or running with a heartbeat
    older than ``import_stale_s`` (its worker died) and no task sent since that lease. Each is
    moved conditionally, so a scheduler that led a moment ago and sweeps too moves it once.
    The caller sends ``resend``'s tasks after this has committed: a worker must find the send
    counted, and a crash in between is one more lost send, found by the next sweep.
    """
    s = settings
    sent_before = now - timedelta(seconds=s.import_queued_lease_s)
    stale_before = now - timedelta(seconds=s.import_stale_s)
    swept = LostImports()
    with engine.begin() as conn:
        for row in import_store.lost(conn, sent_before, stale_before, limit):
            if row.sends < s.import_max_resends:
                if import_store.resend(conn, row.id, row.sends, sent_before, stale_before, now):
                    swept.resend.append(Upload(row.id, row.campaign))
                continue
            reason = f"the import task was lost {row.sends + 1} times; upload the file again"
            if import_store.fail_lost(conn, row.id, row.sends, sent_before, stale_before, reason, now):
                swept.failed.append(row.id)
    for import_id in swept.failed:
        upload_path(settings, import_id).unlink(missing_ok=True)
    return swept


def find_import(engine: Engine, import_id: str) -> AnyRow | None:
    with engine.connect() as conn:
        return import_store.by_id(conn, import_id)


def imports_of(engine: Engine, campaign_id: int, limit: int) -> Sequence[AnyRow]:
    with engine.connect() as conn:
        return import_store.of_campaign(conn, campaign_id, limit)
