"""Campaigns: create, list, look at, pause, resume and cancel; and their live status.

A campaign is addressed by its name, as on the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path
from sqlalchemy.exc import IntegrityError

from outdial.api.auth import Principal, require_admin, require_api_key
from outdial.api.deps import Context, context
from outdial.api.errors import field_error
from outdial.api.schemas import NAME_PATTERN, CampaignBody, unknown_account
from outdial.models import CampaignState
from outdial.services.breaker import resume
from outdial.services.campaigns import CampaignError, create_campaign
from outdial.services.progress import snapshot
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


def find_campaign(ctx: Context, name: str, key: Principal) -> AnyRow:
    """The campaign, or 404 when there is none or the key does not reach it (so it learns nothing)."""
    with ctx.engine.connect() as conn:
        found = campaign_store.by_name(conn, name)
    if found is None or not key.may(found.account, found.name):
        raise HTTPException(404, f"no campaign named {name!r}")
    return found


@router.post("", status_code=201, responses={409: {"description": "A campaign of that name exists."}})
def create(
    body: CampaignBody, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    """Make a campaign. Its timing fields (SPEC 5) are the lowest layer of every lead's and job's."""
    if problem := unknown_account(body.account, ctx.accounts):
        raise field_error("account", problem)
    if not key.may(body.account, body.name):
        raise HTTPException(403, f"the key {key.name!r} has no scope for campaign {body.name!r} on {body.account!r}")
    with ctx.engine.connect() as conn:
        if campaign_store.by_name(conn, body.name) is not None:
            raise HTTPException(409, f"a campaign named {body.name!r} exists already")
    try:
        campaign_id = create_campaign(
            ctx.engine,
            ctx.settings,
            body.name,
            body.account,
            body.timing(),
            datetime.now(UTC),
            retry_on=body.retry_on,
            cron=body.cron,
            calls_per_minute=body.calls_per_minute,
        )
    except CampaignError as exc:
        field, _, message = str(exc).partition(": ")
        if field == "name":
            raise HTTPException(409, str(exc)) from None
        raise field_error(field, message or str(exc)) from None
    except IntegrityError:
        # Another request made the same name between the check and the insert.
        raise HTTPException(409, f"a campaign named {body.name!r} exists already") from None
    with ctx.engine.connect() as conn:
        row = campaign_store.by_id(conn, campaign_id)
    assert row is not None
    return campaign_json(row, {})


@router.get("")
def list_campaigns(ctx: Context = Depends(context), key: Principal = Depends(require_api_key)) -> list[dict[str, Any]]:
    """Every campaign the key reaches, with its jobs counted per state."""
    with ctx.engine.connect() as conn:
        rows = campaign_store.all_campaigns(conn)
        counts = ops_store.counts_by_campaign_and_state(conn)
    return [campaign_json(row, counts.get(row.id, {})) for row in rows if key.may(row.account, row.name)]


@router.get("/{name}", responses=NOT_FOUND)
def get_campaign(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    campaign = find_campaign(ctx, name, key)
    with ctx.engine.connect() as conn:
        counts = job_store.counts_by_state(conn, campaign.id)
    return campaign_json(campaign, counts)


@router.get("/{name}/status", responses=NOT_FOUND)
def campaign_status(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    """Progress now: jobs per state, outcomes, next due time, dial rate over the last minutes, recent errors."""
    campaign = find_campaign(ctx, name, key)
    with ctx.engine.connect() as conn:
        return snapshot(conn, campaign, datetime.now(UTC))


@router.post("/{name}/pause", responses={**NOT_FOUND, **CONFLICT})
def pause(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_api_key)
) -> dict[str, Any]:
    """Stop dialling the campaign's jobs (calls already placed finish). Pausing a paused campaign is a no-op."""
    campaign = find_campaign(ctx, name, key)
    now = datetime.now(UTC)
    with ctx.engine.begin() as conn:
        moved = campaign_store.set_state(
            conn, campaign.id, [CampaignState.ACTIVE], CampaignState.PAUSED, now, f"paused through the API ({key.name})"
        )
        state = campaign_store.campaign_state(conn, campaign.id)
    if not moved and state != CampaignState.PAUSED:
        raise HTTPException(409, f"campaign {name!r} is {state}; only an active campaign can be paused")
    return {"campaign": name, "state": state, "changed": moved}


@router.post("/{name}/resume", responses={**NOT_FOUND, **CONFLICT})
def resume_campaign(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_admin)
) -> dict[str, Any]:
    """Dial again (admin scope). A campaign its circuit breaker paused has the breaker closed too, as
    ``outdial breaker resume``."""
    campaign = find_campaign(ctx, name, key)
    if campaign.state == CampaignState.CANCELLED:
        raise HTTPException(409, f"campaign {name!r} is cancelled; a cancelled campaign stays cancelled")
    moved = campaign.state == CampaignState.PAUSED
    if moved:
        resume(ctx.engine, "campaign", str(campaign.id), datetime.now(UTC))
    with ctx.engine.connect() as conn:
        state = campaign_store.campaign_state(conn, campaign.id)
    return {"campaign": name, "state": state, "changed": moved}


@router.post("/{name}/cancel", responses=NOT_FOUND)
def cancel(
    name: str = CampaignPath, ctx: Context = Depends(context), key: Principal = Depends(require_admin)
) -> dict[str, Any]:
    """End the campaign (admin scope): every job not yet handed to a worker becomes ``cancelled``.

    Calls already being dialled finish (the worker re-checks the campaign before
    each dial). Cancelling a cancelled campaign changes nothing.
    """
    campaign = find_campaign(ctx, name, key)
    now = datetime.now(UTC)
    with ctx.engine.begin() as conn:
        moved = campaign_store.set_state(
            conn,
            campaign.id,
            [CampaignState.ACTIVE, CampaignState.PAUSED],
            CampaignState.CANCELLED,
            now,
            "cancelled through the API",
        )
        cancelled = job_store.cancel_jobs(conn, campaign.id, now)
    return {"campaign": name, "state": CampaignState.CANCELLED.value, "changed": moved, "cancelled_jobs": cancelled}
