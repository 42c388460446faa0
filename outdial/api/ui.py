"""The campaign page: each campaign's progress, why it is (not) dialling, its jobs, and buttons.

Reading it needs no API key (it shows no full phone number and no secret). Its buttons
(pause, resume, cancel; retry or cancel a job; export the jobs as CSV) are plain HTML forms that post the API
key typed on the page; the key is checked exactly as the API checks it
(:func:`~outdial.api.auth.require_api_key`), the same services act, and the browser is
sent back to the page with what happened. Rendered on the server, chart included
(inline SVG), with nothing fetched from outside and no JavaScript.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection

from outdial.api.auth import Level, key_owner
from outdial.api.campaigns import csv_download
from outdial.api.deps import Context, context
from outdial.api.dial_rate import RatePoint, align, bucket_width, buckets_between, chart, dial_rate
from outdial.errors import OutdialError
from outdial.models import ACTIVE_STATES, CampaignState, JobState
from outdial.services import campaigns as campaign_service
from outdial.services import jobs as job_service
from outdial.services.providers.base import Outcome
from outdial.services.shown import mask_numbers, masked
from outdial.services.waiting import explain
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.store import ops as ops_store

router = APIRouter(prefix="/ui", tags=["campaign page"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

# Table columns in life-cycle order: active states first, then how jobs ended.
STATE_ORDER = [s.value for s in JobState]
ACTIVE = {s.value for s in ACTIVE_STATES}
PAGE_SIZE = 25


def progress(counts: dict[str, int]) -> dict[str, int]:
    total = sum(counts.values())
    done = sum(n for state, n in counts.items() if state not in ACTIVE)
    return {"total": total, "done": done, "percent": round(100 * done / total) if total else 0}


def page_results(view: dict[str, Any]) -> list[str]:
    """What the newest attempt's result data holds, as the page names it: the duration, and only
    that a recording, transcript or summary exists. Their contents (what the callee said, a signed
    link to the audio) are in the CSV export, which needs a key; this page needs none."""
    shown = [f"{view['duration_s']} s"] if view.get("duration_s") is not None else []
    named = {"recording_url": "recording", "transcript": "transcript", "summary": "summary"}
    return shown + [word for key, word in named.items() if view.get(key)]


@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request, ctx: Context = Depends(context)) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        found = campaign_store.all_campaigns(conn)
        counts = ops_store.counts_by_campaign_and_state(conn)
    rows = [{"campaign": c, "counts": counts.get(c.id, {}), "progress": progress(counts.get(c.id, {}))} for c in found]
    return templates.TemplateResponse(request, "campaigns.html", {"rows": rows, "states": STATE_ORDER, "refresh": 5})


def _dial_rate(conn: Connection, campaign: AnyRow, now: datetime) -> list[RatePoint]:
    """Calls per minute over the campaign's whole span, counted in the database. A campaign that
    may still dial is drawn up to now, so a stall shows as the empty minutes it is."""
    span = ops_store.attempt_span(conn, campaign.id)
    if span is None:
        return []
    first, last = span
    if campaign.state in (CampaignState.ACTIVE, CampaignState.PAUSED):
        last = max(last, now)
    width = bucket_width(first, last)
    start = align(first, width)
    counts = ops_store.attempt_buckets(conn, campaign.id, start, width)
    return dial_rate(counts, start, width, buckets_between(start, last, width), now)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_detail(
    campaign_id: int,
    request: Request,
    ctx: Context = Depends(context),
    state: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
    outcome: Annotated[list[str], Query()] = [],  # noqa: B006
    after: Annotated[int, Query(ge=0)] = 0,
    message: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    now = datetime.now(UTC)
    states = [s for s in state if s in STATE_ORDER]
    outcomes = [o for o in outcome if o in set(Outcome)]
    unknown = [v for v in (*state, *outcome) if v not in STATE_ORDER and v not in set(Outcome)]
    if unknown and message is None:
        # Said, not silently dropped: the list below is not filtered the way the address asked.
        message = f"not filtered by {', '.join(repr(v[:40]) for v in unknown[:3])}: no such state or outcome"
    with ctx.engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
        if campaign is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        counts = job_store.counts_by_state(conn, campaign_id)
        call_outcomes, pending = ops_store.attempt_results(conn, campaign_id)
        why = explain(conn, campaign, now, ctx.settings)
        page = job_service.list_jobs(conn, campaign, states=states, outcomes=outcomes, after_id=after, limit=PAGE_SIZE)
        rate = _dial_rate(conn, campaign, now)
    zone = ZoneInfo(why.zone)
    filters = [("state", s) for s in states] + [("outcome", o) for o in outcomes]
    context_vars = {
        "campaign": campaign,
        "counts": counts,
        "states": STATE_ORDER,
        "progress": progress(counts),
        "outcomes": sorted(call_outcomes.items(), key=lambda kv: -kv[1]),
        "ended_calls": sum(call_outcomes.values()),
        "pending": sorted(pending.items(), key=lambda kv: -kv[1]),
        "attempts": sum(call_outcomes.values()) + sum(pending.values()),
        "chart": chart(rate),
        "peak": max((p.per_minute for p in rate if not p.partial), default=0.0),
        "why": why,
        "zone": zone,
        "jobs": [_job_row(job, page.latest.get(int(job.id)), zone) for job in page.jobs],
        "next_page": f"?{urlencode([*filters, ('after', page.next_after)])}" if page.next_after else None,
        "first_page": f"?{urlencode(filters)}" if after else None,
        "filter_states": states,
        "filter_outcomes": outcomes,
        "all_outcomes": [o.value for o in Outcome],
        "message": message,
        "now": now,
    }
    return templates.TemplateResponse(request, "campaign.html", context_vars)


def _job_row(job: AnyRow, attempt: AnyRow | None, zone: ZoneInfo) -> dict[str, Any]:
    due = job.next_due_at
    view = job_service.attempt_view(attempt)
    return {
        "id": job.id,
        "lead_id": job.lead_id,
        "number": masked(job.to_number),
        "round": job.round,
        "state": job.state,
        "outcome": job.last_outcome,
        "attempts": job.attempts_used,
        "next_due": due.astimezone(zone).strftime("%m-%d %H:%M") if due and job.state == JobState.SCHEDULED else "",
        "next_due_utc": due.strftime("%Y-%m-%d %H:%M UTC") if due else "",
        # Free text from a provider or a person may quote a number: the page is open to anyone.
        "reason": mask_numbers(job.reason or ""),
        "attempt": {**view, "error": mask_numbers(view["error"] or "")},
        "results": page_results(view),
        "can_retry": job.state in job_service.RETRYABLE,
        "can_cancel": job.state in job_service.CANCELLABLE,
    }


# Buttons --------------------------------------------------------------------------------


def _back(campaign_id: int, message: str, filters: list[tuple[str, str]]) -> RedirectResponse:
    # 303: the browser follows with a GET, so reloading the page does not post again. The
    # job filters the page had are kept, so the operator sees the list they acted on.
    query = urlencode([*filters, ("message", message)])
    return RedirectResponse(f"/ui/campaigns/{campaign_id}?{query}", status_code=303)


def _act(ctx: Context, campaign: AnyRow, do: str, who: str, now: datetime) -> str:
    """Carry out one button of the page; what happened, in words."""
    name = campaign.name
    if do == "pause":
        change = campaign_service.pause(ctx.engine, name, now, f"paused on the campaign page by {who}")
        return f"campaign {'paused' if change.changed else 'was already paused'}"
    if do == "resume":
        change = campaign_service.resume(ctx.engine, name, now)
        return f"campaign {'resumed' if change.changed else 'was already ' + change.state.value}"
    if do == "cancel":
        change = campaign_service.cancel(ctx.engine, name, now, f"cancelled on the campaign page by {who}")
        return f"campaign cancelled; {change.cancelled_jobs} jobs cancelled"
    verb, _, arg = do.partition(":")
    if verb == "retry-all":
        changed = job_service.retry_campaign(ctx.engine, ctx.settings, name, [arg], who, now)
        return _summary("retried", changed)
    if verb in ("retry", "cancel-job") and arg.isdigit():
        job_id = int(arg)
        with ctx.engine.connect() as conn:
            job = job_store.get_job(conn, job_id)
        if job is None or job.campaign_id != campaign.id:
            return f"no job {job_id} in this campaign"
        if verb == "retry":
            return _summary("retried", job_service.retry(ctx.engine, ctx.settings, [job_id], who, now))
        return _summary("cancelled", job_service.cancel(ctx.engine, [job_id], who, now))
    return f"unknown action {do!r}"


def _summary(verb: str, changed: job_service.JobsChanged) -> str:
    done = ", ".join(str(i) for i in changed.done)
    text = f"{verb} job {done}" if len(changed.done) == 1 else f"{verb} {len(changed.done)} jobs"
    if changed.refused:
        text += "; refused: " + "; ".join(list(changed.refused.values())[:3])
    return text


@router.post("/campaigns/{campaign_id}/act", status_code=303)
def act(
    campaign_id: int,
    do: Annotated[str, Form(max_length=100)],
    api_key: Annotated[str, Form(max_length=200)] = "",
    state: Annotated[list[str], Form()] = [],  # noqa: B006 (the page's filters, kept)
    outcome: Annotated[list[str], Form()] = [],  # noqa: B006
    ctx: Context = Depends(context),
) -> Response:
    """A button of the campaign page, with the API key typed there: back to the page with what
    happened, or the CSV export as a download (the page stays where it was)."""
    filters = [("state", s) for s in state if s in STATE_ORDER] + [("outcome", o) for o in outcome if o in set(Outcome)]
    owner = key_owner(ctx.engine, api_key) if api_key else None
    if owner is None:
        return _back(campaign_id, "not done: a valid API key is needed (outdial keys create NAME)", filters)
    with ctx.engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    if campaign is None or not owner.may(campaign.account, campaign.name):
        raise HTTPException(404, f"no campaign {campaign_id}")
    if do == "export":
        return csv_download(ctx, campaign)  # reading: any key that reaches the campaign
    try:
        # As over HTTP: pausing writes; resuming, cancelling and retrying are the admin's.
        owner.require(Level.WRITE if do == "pause" else Level.ADMIN)
        message = _act(ctx, campaign, do, job_service.api_actor(owner.name), datetime.now(UTC))
    except OutdialError as exc:
        message = f"not done: {exc}"
    except HTTPException as exc:
        message = f"not done: {exc.detail}"
    return _back(campaign_id, message, filters)
