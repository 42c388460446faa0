"""The campaign page: a read-only view of each campaign's progress, outcomes and dial rate.

Open without an API key (it changes nothing and shows no phone numbers or
secrets). Rendered on the server, chart included (inline SVG), with nothing
fetched from outside, and refreshed by the browser every few seconds.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from outdial.api.deps import Context, context
from outdial.api.dial_rate import chart, dial_rate
from outdial.models import ACTIVE_STATES, JobState
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.store import ops as ops_store

router = APIRouter(prefix="/ui", tags=["campaign page"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

# Table columns in life-cycle order: active states first, then how jobs ended.
STATE_ORDER = [s.value for s in JobState]
ACTIVE = {s.value for s in ACTIVE_STATES}


def progress(counts: dict[str, int]) -> dict[str, int]:
    total = sum(counts.values())
    done = sum(n for state, n in counts.items() if state not in ACTIVE)
    return {"total": total, "done": done, "percent": round(100 * done / total) if total else 0}


@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request, ctx: Context = Depends(context)) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        found = campaign_store.all_campaigns(conn)
        counts = ops_store.counts_by_campaign_and_state(conn)
    rows = [{"campaign": c, "counts": counts.get(c.id, {}), "progress": progress(counts.get(c.id, {}))} for c in found]
    return templates.TemplateResponse(request, "campaigns.html", {"rows": rows, "states": STATE_ORDER})


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_detail(campaign_id: int, request: Request, ctx: Context = Depends(context)) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
        if campaign is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        counts = job_store.counts_by_state(conn, campaign_id)
        outcomes = ops_store.attempt_outcomes(conn, campaign_id)
        times = ops_store.attempt_times(conn, campaign_id)
    rate = dial_rate(times)
    context_vars = {
        "campaign": campaign,
        "counts": counts,
        "states": STATE_ORDER,
        "progress": progress(counts),
        "outcomes": sorted(outcomes.items(), key=lambda kv: -kv[1]),
        "attempts": sum(outcomes.values()),
        "chart": chart(rate),
        "peak": max((p.per_minute for p in rate), default=0.0),
    }
    return templates.TemplateResponse(request, "campaign.html", context_vars)
