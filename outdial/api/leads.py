"""Lead lists uploaded as CSV into a campaign: the same import as ``outdial import``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from outdial.api.auth import Principal, require_api_key
from outdial.api.campaigns import NOT_FOUND, CampaignPath, find_campaign
from outdial.api.deps import Context, context
from outdial.api.errors import field_error
from outdial.models import CampaignState
from outdial.services.intake.csv_import import ImportFailed, import_csv
from outdial.services.requests import ImportOptions

router = APIRouter(prefix="/campaigns", tags=["leads"])


@router.post(
    "/{name}/leads",
    responses={**NOT_FOUND, 409: {"description": "The campaign is cancelled."}},
)
async def upload_leads(
    options: Annotated[ImportOptions, Query()],
    file: UploadFile = File(description="A CSV lead list: a phone column, optional overrides, variables."),
    name: str = CampaignPath,
    ctx: Context = Depends(context),
    key: Principal = Depends(require_api_key),
) -> dict[str, Any]:
    """Import a CSV lead list into the campaign.

    Answers with the import's summary: ``rows = accepted + rejected + duplicates +
    suppressed``, and ``report``, the server-side path of the CSV naming each
    rejected row and why. A file that cannot be read as a whole (not UTF-8, no
    phone column) is a 422 and imports nothing. Importing the same file again
    imports nothing twice.
    """
    campaign = find_campaign(ctx, name, key)
    if campaign.state == CampaignState.CANCELLED:
        raise HTTPException(409, f"campaign {name!r} is cancelled")
    try:
        # The upload is spooled to a temporary file; the import streams it from there.
        summary = await run_in_threadpool(
            import_csv,
            ctx.engine,
            ctx.settings,
            name,
            file.file,
            default_region=options.default_region,
            phone_column=options.phone_column,
        )
    except ImportFailed as exc:
        message = str(exc)
        if message.startswith("default region:"):
            raise field_error("default_region", message.removeprefix("default region:").strip(), "query") from None
        raise field_error("file", message) from None
    finally:
        await file.close()
    return summary.as_dict()
