"""Campaigns: create, list, look at, pause, resume and cancel; and their live status.

A campaign is addressed by its name, as on the command line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import StreamingResponse

from outdial.api.auth import Principal, require_admin, require_api_key
from outdial.api.deps import Context, context
from outdial.api.jobs import MAX_ID
from outdial.api.schemas import Campaign, CampaignChanged, CampaignDetail, CampaignStatus, JobPage
from outdial.errors import NotFound
from outdial.models import CampaignState, JobState
from outdial.services import campaigns
from outdial.services.export import stream_csv
from outdial.services.jobs import PAGE_MAX, api_actor, attempt_view, list_jobs
from outdial.services.progress import job_summary, snapshot
from outdial.services.providers.base import Outcome
from outdial.services.requests import NAME_PATTERN
from outdial.services.waiting import explain
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.store import ops as ops_store

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No campaign of that name."}}
CONFLICT: Responses = {409: {"description": "The campaign's state does not allow it (e.g. resuming a cancelled one)."}}
CampaignPath = Path(min_length=1, max_length=200, pattern=NAME_PATTERN, description="The campaign's name.")


def find_campaign(ctx: Context, name: str, key: Principal) -> AnyRow:
    """The campaign, or 404 when there is none or the key does not reach it (so it learns nothing)."""
    with ctx.engine.connect() as conn:
        found = campaigns.find(conn, name)
    if not key.may(found.account, found.name):
        raise NotFound(f"no campaign named {name!r}")  # the key learns nothing of what it cannot reach
    return found


def _change_json(change: campaigns.CampaignChange) -> dict[str, Any]:
    out: dict[str, Any] = {"campaign": change.campaign, "state": change.state.value, "changed": change.changed}
    if change.state == CampaignState.CANCELLED:
        out["cancelled_jobs"] = change.cancelled_jobs
    return out


@router.post(
    "",
    status_code=201,
    response_model=Campaign,
    response_model_exclude_unset=True,
    summary="Create a campaign",
    responses={409: {"description": "A campaign of that name exists."}},
)
def create(
    body: campaigns.CampaignBody, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    """Make a campaign. Its timing fields (SPEC 5) are the lowest layer of every lead's and job's.
    With ``"state": "paused"`` it dials nothing until resumed."""
    if not key.may(body.account, body.name):
        raise HTTPException(403, f"the key {key.name!r} has no scope for campaign {body.name!r} on {body.account!r}")
    row = campaigns.create(ctx.engine, ctx.settings, ctx.accounts, body, datetime.now(UTC), api_actor(key.name))
    return {**campaigns.campaign_view(row), "counts": {}}


@router.get("", response_model=list[Campaign], response_model_exclude_unset=True, summary="List campaigns")
def list_campaigns(ctx: Context = Depends(context), key: Principal = Depends(require_api_key)) -> list[dict[str, Any]]:
    """Every campaign the key reaches, with its jobs counted per state."""
    with ctx.engine.connect() as conn:
        rows = campaign_store.all_campaigns(conn)
        counts = ops_store.counts_by_campaign_and_state(conn)
    return [
        {**campaigns.campaign_view(row), "counts": counts.get(row.id, {})}
        for row in rows
        if key.may(row.account, row.name)
    ]


@router.get(
    "/{name}",
    response_model=CampaignDetail,
    response_model_exclude_unset=True,
    summary="Get a campaign and why it is (not) dialling",
    responses=NOT_FOUND,
)
def get_campaign(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    """The campaign, its jobs per state, and why it is (not) dialling with its next due time."""
    campaign = find_campaign(ctx, name, key)
    with ctx.engine.connect() as conn:
        counts = job_store.counts_by_state(conn, campaign.id)
        why = explain(conn, campaign, datetime.now(UTC), ctx.settings)
    return {**campaigns.campaign_view(campaign), "counts": counts, "why": why.as_json()}


@router.get(
    "/{name}/status",
    response_model=CampaignStatus,
    response_model_exclude_unset=True,
    summary="A campaign's progress now",
    responses=NOT_FOUND,
)
def campaign_status(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    """Progress now: jobs per state, outcomes, next due time, dial rate over the last minutes, recent errors."""
    campaign = find_campaign(ctx, name, key)
    with ctx.engine.connect() as conn:
        return snapshot(conn, campaign, datetime.now(UTC), ctx.settings)


@router.post(
    "/{name}/pause",
    response_model=CampaignChanged,
    response_model_exclude_unset=True,
    summary="Pause a campaign",
    responses={**NOT_FOUND, **CONFLICT},
)
def pause(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    """Stop dialling the campaign's jobs (calls already placed finish). Pausing a paused campaign is a no-op."""
    find_campaign(ctx, name, key)
    reason = f"paused by {api_actor(key.name)}"
    return _change_json(campaigns.pause(ctx.engine, name, datetime.now(UTC), reason))


@router.get(
    "/{name}/jobs",
    response_model=JobPage,
    response_model_exclude_unset=True,
    summary="List a campaign's jobs, a page at a time",
    responses=NOT_FOUND,
)
def campaign_jobs(
    name: str = CampaignPath,
    state: Annotated[list[JobState], Query(description="Only jobs in these states (repeat the parameter).")] = [],  # noqa: B006
    outcome: Annotated[list[Outcome], Query(description="Only jobs whose last call ended so.")] = [],  # noqa: B006
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="The `next_after` of the previous page.")] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    ctx: Context = Depends(context),
    key: Principal = Depends(require_api_key),
) -> dict[str, Any]:
    """The campaign's jobs in id order, a page at a time (keyset paging: pass ``next_after`` as ``after``
    for the next page; ``null`` on the last). Each with its newest attempt's provider status."""
    campaign = find_campaign(ctx, name, key)
    with ctx.engine.connect() as conn:
        page = list_jobs(conn, campaign, states=state, outcomes=outcome, after_id=after, limit=limit)
    return {
        "jobs": [
            {**job_summary(job), "latest_attempt": attempt_view(page.latest.get(int(job.id)))} for job in page.jobs
        ],
        "next_after": page.next_after,
    }


EXPORT_EXAMPLE = (
    "job_id,lead_id,round,to_number,state,outcome,attempts,provider_call_ids,reason,next_due_at,"
    "state_changed_at,created_at,raw_status,duration_s,recording_url,transcript,summary,name\r\n"
    "42,17,1,+12125551234,completed,completed,1,call_9f2c,completed,,2026-11-30T14:02:11+00:00,"
    "2026-11-30T13:58:40+00:00,completed,74,https://recordings.example/42.mp3,,Confirmed Tuesday 10:00,Asha\r\n"
)


@router.get(
    "/{name}/export.csv",
    responses={
        **NOT_FOUND,
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}, "example": EXPORT_EXAMPLE}},
            "description": "One row per job: the fixed columns, then the leads' variables.",
        },
    },
    response_class=StreamingResponse,
    summary="Export a campaign's jobs as CSV",
)
def export_csv(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> StreamingResponse:
    """Every job of the campaign as CSV (as ``outdial export``), streamed: any size, memory stays flat."""
    return csv_download(ctx, find_campaign(ctx, name, key))


def csv_download(ctx: Context, campaign: AnyRow) -> StreamingResponse:
    """The campaign's jobs as a CSV attachment, streamed; the API's route and the page's button."""
    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", campaign.name) or "campaign"
    return StreamingResponse(
        stream_csv(ctx.engine, campaign.id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


@router.post(
    "/{name}/resume",
    response_model=CampaignChanged,
    response_model_exclude_unset=True,
    summary="Resume a campaign (admin)",
    responses={**NOT_FOUND, **CONFLICT},
)
def resume_campaign(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_admin)
) -> dict[str, Any]:
    """Dial again (admin scope). A campaign its circuit breaker paused has the breaker closed too, as
    ``outdial breaker resume``."""
    find_campaign(ctx, name, key)
    return _change_json(campaigns.resume(ctx.engine, name, datetime.now(UTC)))


@router.post(
    "/{name}/cancel",
    response_model=CampaignChanged,
    response_model_exclude_unset=True,
    summary="Cancel a campaign and its waiting jobs (admin)",
    responses=NOT_FOUND,
)
def cancel(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_admin)
) -> dict[str, Any]:
    """End the campaign (admin scope): every job not yet handed to a worker becomes ``cancelled``.

    Calls already being dialled finish (the worker re-checks the campaign before
    each dial). Cancelling a cancelled campaign changes nothing.
    """
    find_campaign(ctx, name, key)
    reason = f"cancelled by {api_actor(key.name)}"
    return _change_json(campaigns.cancel(ctx.engine, name, datetime.now(UTC), reason))
