"""Single calls and job status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException
from starlette.concurrency import run_in_threadpool

from api.deps import Context, context
from intake.enqueue import CallBody, enqueue_call
from outdial.store import jobs as job_store
from scheduler.spec import SpecError

router = APIRouter(tags=["calls"])


@router.post("/calls", status_code=201)
async def create_call(
    body: CallBody,
    ctx: Context = Depends(context),
    idempotency_key: str | None = Header(default=None, max_length=200),
) -> dict[str, Any]:
    """Enqueue one call. A repeated ``Idempotency-Key`` returns the first job and makes no other."""
    if body.account not in ctx.accounts:
        raise HTTPException(422, f"account: no account named {body.account!r}")
    try:
        result = await run_in_threadpool(
            enqueue_call, ctx.engine, body, datetime.now(UTC), ctx.settings, idempotency_key
        )
    except (SpecError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    return {"job_id": result.job_id, "state": result.state, "created": result.created}


@router.get("/jobs/{job_id}")
def get_job(job_id: int, ctx: Context = Depends(context)) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        attempts = job_store.attempts_of(conn, job_id)
    return {
        "id": job.id,
        "state": job.state,
        "to_number": job.to_number,
        "account": job.account,
        "campaign_id": job.campaign_id,
        "next_due_at": job.next_due_at,
        "attempts_used": job.attempts_used,
        "last_outcome": job.last_outcome,
        "reason": job.reason,
        "attempts": [
            {
                "number": a.number,
                "requested_at": a.requested_at,
                "http_status": a.http_status,
                "provider_call_id": a.provider_call_id,
                "result": a.result,
                "outcome": a.outcome,
                "raw_status": a.raw_status,
                "error": a.error,
            }
            for a in attempts
        ],
    }
