"""Single calls and job status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response
from sqlalchemy import Connection

from outdial.api.auth import Principal, require_admin, require_api_key
from outdial.api.deps import Context, Pool, context
from outdial.api.errors import OUT_OF_RANGE, field_error, spec_error
from outdial.api.schemas import CallAccepted, JobDetail
from outdial.errors import NotFound
from outdial.services import jobs
from outdial.services.intake.enqueue import CallBody, check_call, enqueue_call
from outdial.services.progress import job_detail
from outdial.services.requests import PRINTABLE
from outdial.services.timing.spec import SpecError
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store

router = APIRouter(tags=["calls"])

# Ids are 64-bit in the database; a larger one in a URL is a 422, not a driver error.
MAX_ID = 2**63 - 1


@router.post(
    "/calls",
    status_code=201,
    response_model=CallAccepted,
    response_model_exclude_unset=True,
    summary="Enqueue one call",
    responses={
        200: {"model": CallAccepted, "description": "The Idempotency-Key was seen before: its first job, unchanged."},
        409: {"description": "The Idempotency-Key was first sent with a different request."},
    },
)
async def create_call(
    body: CallBody,
    response: Response,
    ctx: Context = Depends(context),
    key: Principal = Depends(require_api_key),
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=PRINTABLE,
            description="Repeat a request with the same key and get its first job back; no second job is made.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Enqueue one call. A repeated ``Idempotency-Key`` returns the first job (200) and makes no other;
    the same key with a different request is a 409."""
    check_call(body, ctx.accounts)
    if not key.may(body.account, None):
        raise HTTPException(403, f"the key {key.name!r} has no scope for single calls on account {body.account!r}")
    try:
        result = await anyio.to_thread.run_sync(
            enqueue_call,
            ctx.engine,
            body,
            datetime.now(UTC),
            ctx.settings,
            idempotency_key,
            limiter=ctx.threads(Pool.CALLS),
        )
    except SpecError as exc:
        raise spec_error(exc) from None
    except OverflowError:
        # Date arithmetic near year 1 or 9999 leaves the calendar; only schedule_at gives such dates.
        raise field_error("schedule_at", OUT_OF_RANGE) from None
    except ValueError as exc:
        # enqueue_call's only other ValueError: a number phonenumbers calls invalid.
        raise field_error("to_number", str(exc)) from None
    if not result.created:
        response.status_code = 200
    return result.as_dict()


def _reaches(conn: Connection, key: Principal, job: AnyRow) -> bool:
    """Whether the key reaches the job: its account, and its campaign (by name) if it has one."""
    campaign = campaign_store.by_id(conn, job.campaign_id) if job.campaign_id is not None else None
    return key.may(job.account, campaign.name if campaign is not None else None)


@router.get(
    "/jobs",
    response_model=list[JobDetail],
    response_model_exclude_unset=True,
    summary="Find the job enqueued with an Idempotency-Key",
)
def find_jobs(
    idempotency_key: Annotated[
        str, Query(min_length=1, max_length=200, pattern=PRINTABLE, description="The key the job was enqueued with.")
    ],
    ctx: Context = Depends(context),
    key: Principal = Depends(require_api_key),
) -> list[dict[str, Any]]:
    """The job enqueued with an idempotency key (a list of one, or empty): how a Celery caller finds its job."""
    with ctx.engine.connect() as conn:
        job_id = job_store.job_by_idempotency_key(conn, idempotency_key)
        job = job_store.get_job(conn, job_id) if job_id is not None else None
        if job is None or not _reaches(conn, key, job):
            return []
        detail = job_detail(conn, job.id)
        return [] if detail is None else [detail]


@router.get(
    "/jobs/{job_id}",
    response_model=JobDetail,
    response_model_exclude_unset=True,
    summary="Get a job, its attempts and its history",
    responses={404: {"description": "No such job."}},
)
def get_job(
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Context = Depends(context),
    key: Principal = Depends(require_api_key),
) -> dict[str, Any]:
    """A job's state, its attempts and what became of each, and its history of transitions."""
    with ctx.engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        detail = job_detail(conn, job_id) if job is not None and _reaches(conn, key, job) else None
    if detail is None:
        raise NotFound(f"no job {job_id}")
    return detail


JOB_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such job."},
    409: {"description": "The job's state does not allow it; the message says which states do."},
}


def _reached(ctx: Context, key: Principal, job_id: int) -> None:
    with ctx.engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        if job is None or not _reaches(conn, key, job):
            raise NotFound(f"no job {job_id}")


def _detail(ctx: Context, job_id: int) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        detail = job_detail(conn, job_id)
    if detail is None:
        raise NotFound(f"no job {job_id}")
    return detail


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobDetail,
    response_model_exclude_unset=True,
    summary="Dial an ended job once more (admin)",
    responses=JOB_REFUSALS,
)
def retry_job(
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Context = Depends(context),
    key: Principal = Depends(require_admin),
) -> dict[str, Any]:
    """Dial an ended job once more (admin scope; ``unknown``, ``exhausted``, ``expired`` or ``rejected``): due
    now, or when its window next opens. A deliberate act: an ``unknown`` call may have rung already;
    the job's reason and history record which key retried it."""
    _reached(ctx, key, job_id)
    jobs.retry_job(ctx.engine, ctx.settings, job_id, jobs.api_actor(key.name), datetime.now(UTC))
    return _detail(ctx, job_id)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobDetail,
    response_model_exclude_unset=True,
    summary="Cancel a job no worker holds (admin)",
    responses=JOB_REFUSALS,
)
def cancel_job(
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Context = Depends(context),
    key: Principal = Depends(require_admin),
) -> dict[str, Any]:
    """Cancel a job no worker holds (admin scope; ``scheduled``, ``queued`` or ``unknown``); a call in
    progress finishes."""
    _reached(ctx, key, job_id)
    jobs.cancel_job(ctx.engine, job_id, jobs.api_actor(key.name), datetime.now(UTC))
    return _detail(ctx, job_id)
