"""Campaigns: create, list, look at, pause, resume and cancel; and their live status.

A campaign is addressed by its name, as on the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path

from outdial.api.auth import require_api_key
from outdial.api.deps import Context, context
from outdial.models import CampaignState
from outdial.services import campaigns
from outdial.services.progress import snapshot
from outdial.services.requests import NAME_PATTERN
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.store import ops as ops_store

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No campaign of that name."}}
CONFLICT: Responses = {409: {"description": "The campaign's state does not allow it (e.g. resuming a cancelled one)."}}
CampaignPath = Path(min_length=1, max_length=200, pattern=NAME_PATTERN, description="The campaign's name.")


def campaign_json(row: AnyRow, counts: dict[str, int] | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "name": row.name,
        "account": row.account,
        "state": row.state,
        "pause_reason": row.pause_reason,
        "timing": row.timing,
        "retry_on": row.retry_on,
        "cron": row.cron,
        "round": row.round,
        "next_round_at": row.next_round_at,
        "calls_per_minute": row.calls_per_minute,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if counts is not None:
        out["counts"] = counts
    return out


def _campaign(ctx: Context, name: str) -> AnyRow:
    with ctx.engine.connect() as conn:
        return campaigns.find(conn, name)


def _change_json(change: campaigns.CampaignChange) -> dict[str, Any]:
    out: dict[str, Any] = {"campaign": change.campaign, "state": change.state.value, "changed": change.changed}
    if change.state == CampaignState.CANCELLED:
        out["cancelled_jobs"] = change.cancelled_jobs
    return out


@router.post("", status_code=201, responses={409: {"description": "A campaign of that name exists."}})
def create(body: campaigns.CampaignBody, ctx: Context = Depends(context)) -> dict[str, Any]:
    """Make a campaign. Its timing fields (SPEC 5) are the lowest layer of every lead's and job's."""
    row = campaigns.create(ctx.engine, ctx.settings, ctx.accounts, body, datetime.now(UTC))
    return campaign_json(row, {})


@router.get("")
def list_campaigns(ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    """Every campaign, with its jobs counted per state."""
    with ctx.engine.connect() as conn:
        rows = campaign_store.all_campaigns(conn)
        counts = ops_store.counts_by_campaign_and_state(conn)
    return [campaign_json(row, counts.get(row.id, {})) for row in rows]


@router.get("/{name}", responses=NOT_FOUND)
def get_campaign(name: str = CampaignPath, ctx: Context = Depends(context)) -> dict[str, Any]:
    campaign = _campaign(ctx, name)
    with ctx.engine.connect() as conn:
        counts = job_store.counts_by_state(conn, campaign.id)
    return campaign_json(campaign, counts)


@router.get("/{name}/status", responses=NOT_FOUND)
def campaign_status(name: str = CampaignPath, ctx: Context = Depends(context)) -> dict[str, Any]:
    """Progress now: jobs per state, outcomes, next due time, dial rate over the last minutes, recent errors."""
    campaign = _campaign(ctx, name)
    with ctx.engine.connect() as conn:
        return snapshot(conn, campaign, datetime.now(UTC))


@router.post("/{name}/pause", responses={**NOT_FOUND, **CONFLICT})
def pause(
    name: str = CampaignPath, ctx: Context = Depends(context), key: str = Depends(require_api_key)
) -> dict[str, Any]:
    """Stop dialling the campaign's jobs (calls already placed finish). Pausing a paused campaign is a no-op."""
    return _change_json(campaigns.pause(ctx.engine, name, datetime.now(UTC), f"paused through the API ({key})"))


@router.post("/{name}/resume", responses={**NOT_FOUND, **CONFLICT})
def resume_campaign(name: str = CampaignPath, ctx: Context = Depends(context)) -> dict[str, Any]:
    """Dial again. A campaign its circuit breaker paused has the breaker closed too, as ``outdial breaker resume``."""
    return _change_json(campaigns.resume(ctx.engine, name, datetime.now(UTC)))


@router.post("/{name}/cancel", responses=NOT_FOUND)
def cancel(name: str = CampaignPath, ctx: Context = Depends(context)) -> dict[str, Any]:
    """End the campaign: every job not yet handed to a worker becomes ``cancelled``.

    Calls already being dialled finish (the worker re-checks the campaign before
    each dial). Cancelling a cancelled campaign changes nothing.
    """
    return _change_json(campaigns.cancel(ctx.engine, name, datetime.now(UTC), "cancelled through the API"))
