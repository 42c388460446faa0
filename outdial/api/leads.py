"""Lead lists uploaded as CSV into a campaign: accepted at once (202), imported by a worker.

The import is the one ``outdial import`` runs; ``GET /imports/{id}`` shows its
progress and then its summary, and the report of rejected rows is downloaded
from ``GET /imports/{id}/report.csv``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Path, Query, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from outdial.api.auth import Principal, require_api_key
from outdial.api.campaigns import NOT_FOUND, CampaignPath, Responses, find_campaign
from outdial.api.deps import Context, context
from outdial.api.errors import field_error
from outdial.errors import NotFound
from outdial.models import ImportState
from outdial.services.intake import uploads
from outdial.services.intake.csv_import import ImportFailed
from outdial.services.requests import ImportOptions
from outdial.settings import Settings
from outdial.store import AnyRow

router = APIRouter(tags=["leads"])

ImportId = Path(pattern=r"^[0-9a-f]{32}$", description="The import's id, as the upload answered it.")
NO_IMPORT: Responses = {404: {"description": "No import with that id (or not one this key reaches)."}}


class LeadImportView(BaseModel):
    """An uploaded lead list: its progress while a worker imports it, then its summary."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2b8c0d9e7a4b1c8d6e5f4a3b2c1d0e",
                    "campaign": "diwali-reminders",
                    "state": "done",
                    "file_name": "leads-pune.csv",
                    "rows": 200000,
                    "accepted": 198740,
                    "rejected": 812,
                    "duplicates": 431,
                    "suppressed": 17,
                    "error": None,
                    "report": "/imports/3f2b8c0d9e7a4b1c8d6e5f4a3b2c1d0e/report.csv",
                    "created_at": "2026-11-30T09:15:02Z",
                    "started_at": "2026-11-30T09:15:03Z",
                    "finished_at": "2026-11-30T09:15:31Z",
                }
            ]
        }
    )

    id: str
    campaign: str
    state: ImportState = Field(description="queued, running, done, or failed (nothing was imported: see error).")
    file_name: str | None
    rows: int = Field(description="Data rows read so far; when done, accepted + rejected + duplicates + suppressed.")
    accepted: int = Field(description="Leads imported, each a job (so far, while running).")
    rejected: int = Field(description="Bad rows, each named with its reason in the report.")
    duplicates: int = Field(description="Numbers already in the campaign or earlier in the file (known when done).")
    suppressed: int = Field(description="Numbers on the do-not-call list (known when done).")
    error: str | None = Field(description="Why a failed import imported nothing.")
    report: str | None = Field(description="Where to download the report of rejected rows; null when none was.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _view(row: AnyRow) -> LeadImportView:
    return LeadImportView(
        id=row.id,
        campaign=row.campaign,
        state=ImportState(row.state),
        file_name=row.file_name,
        rows=row.rows,
        accepted=row.accepted,
        rejected=row.rejected,
        duplicates=row.duplicates,
        suppressed=row.suppressed,
        error=row.error,
        report=f"/imports/{row.id}/report.csv" if row.has_report else None,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


@router.post(
    "/campaigns/{name}/leads",
    status_code=202,
    summary="Upload a CSV lead list",
    responses={
        **NOT_FOUND,
        409: {"description": "The campaign is cancelled."},
        422: {"description": "The file cannot be imported as a whole (not UTF-8, no phone column) or bad options."},
    },
)
async def upload_leads(
    response: Response,
    options: Annotated[ImportOptions, Query()],
    file: UploadFile = File(description="A CSV lead list: a phone column, optional overrides, variables."),
    name: str = CampaignPath,
    ctx: Context = Depends(context),
    key: Principal = Depends(require_api_key),
) -> LeadImportView:
    """Store the file and queue its import; answers 202 with the import, ``Location: /imports/{id}``.

    What would refuse the whole file (not UTF-8, no phone column, an unknown
    region) is a 422 here and keeps nothing. The rows are imported by a
    worker, as ``outdial import`` does: ``rows = accepted + rejected +
    duplicates + suppressed``, each rejected row named with its reason in
    the report, and importing the same file again imports nothing twice.
    """
    find_campaign(ctx, name, key)  # 404 for a campaign the key does not reach
    try:
        upload = await run_in_threadpool(
            uploads.accept_upload,
            ctx.engine,
            ctx.settings,
            name,
            file.file,
            options,
            file_name=(file.filename or "")[:255] or None,
            uploaded_by=key.name,
            now=datetime.now(UTC),
        )
    except ImportFailed as exc:
        message = str(exc)
        if message.startswith("default region:"):
            raise field_error("default_region", message.removeprefix("default region:").strip(), "query") from None
        raise field_error("file", message) from None
    finally:
        await file.close()
    try:
        await run_in_threadpool(_send, upload, ctx.settings)
    except Exception as exc:
        reason = f"the import could not be queued ({type(exc).__name__}); upload the file again"
        # Still queued: nobody will import it, so it fails and its file goes. Already taken: the
        # message left though the send reported an error, and the import goes on (202).
        if await run_in_threadpool(uploads.withdraw, ctx.engine, ctx.settings, upload.import_id, reason):
            raise HTTPException(503, f"import {upload.import_id}: {reason}") from None
    response.headers["Location"] = f"/imports/{upload.import_id}"
    return _found(ctx, upload.import_id, key)


def _send(upload: uploads.Upload, settings: Settings) -> None:
    # Imported here: the Celery app is loaded only by the API processes that take uploads.
    from outdial.worker.intake_tasks import send_run_import

    send_run_import(upload, settings)


def _found(ctx: Context, import_id: str, key: Principal) -> LeadImportView:
    row = uploads.find_import(ctx.engine, import_id)
    if row is None:
        raise NotFound(f"no import {import_id!r}")
    try:
        find_campaign(ctx, row.campaign, key)
    except NotFound:
        raise NotFound(f"no import {import_id!r}") from None
    return _view(row)


@router.get("/imports/{import_id}", summary="An upload's progress and summary", responses=NO_IMPORT)
def get_import(
    import_id: str = ImportId, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> LeadImportView:
    """The import's state and counts so far; when ``done``, its summary and the report's address."""
    return _found(ctx, import_id, key)


@router.get(
    "/imports/{import_id}/report.csv",
    summary="Download the report of rejected rows",
    response_class=FileResponse,
    responses={
        **NO_IMPORT,
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "row (the header is row 1),line,phone,reason\r\n"
                    "7,7,555-0199,phone: not a valid number for region US\r\n",
                }
            },
            "description": "One line per rejected row: its row and line in the file, the phone as given, why.",
        },
    },
)
def import_report(
    import_id: str = ImportId, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> FileResponse:
    """The rejected rows, each with its file row, line, the value given and the reason."""
    found = _found(ctx, import_id, key)
    path = uploads.report_path(ctx.settings, import_id)
    if found.report is None or not path.is_file():
        raise NotFound(f"import {import_id!r} has no report: no row was rejected, or it has not finished")
    return FileResponse(path, media_type="text/csv", filename=f"{found.campaign}-rejected-{import_id[:8]}.csv")


@router.get("/campaigns/{name}/imports", summary="A campaign's uploads, newest first", responses=NOT_FOUND)
def campaign_imports(
    name: str = CampaignPath,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ctx: Context = Depends(context),
    key: Principal = Depends(require_api_key),
) -> list[LeadImportView]:
    """The campaign's latest uploads, each with its state and counts (``limit``, 20 by default)."""
    campaign = find_campaign(ctx, name, key)
    return [_view(row) for row in uploads.imports_of(ctx.engine, campaign.id, limit)]
