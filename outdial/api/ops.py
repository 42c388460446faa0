"""Operations endpoints: ``/readyz`` (can this instance serve?) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache

import redis
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Engine

from outdial import metrics
from outdial.api.auth import Principal, optional_key
from outdial.api.deps import Context, context
from outdial.api.schemas import CheckResult, Readiness, ReadinessChecks
from outdial.models import JobState
from outdial.services.readiness import Check, check_database, check_migrations, check_redis
from outdial.store import jobs as job_store
from outdial.store import ops as ops_store

router = APIRouter(tags=["operations"])

DETAILS_HINT = "send an API key for each check's detail and fix, or run `outdial doctor`"


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: database, migrations and Redis",
    responses={503: {"model": Readiness, "description": "A check failed: this instance cannot serve."}},
)
def readyz(ctx: Context = Depends(context), key: Principal | None = Depends(optional_key)) -> JSONResponse:
    """Ready to serve: the database answers and is migrated, Redis answers. 503 when not.

    Open, for load balancers: without a key it says only which checks passed; with a valid
    API key it also names what failed and how to fix it (these details hold hosts and URLs)."""
    checks = [check_database(ctx.engine), check_redis(ctx.settings.redis_url)]
    if checks[0].ok:
        checks.append(check_migrations(ctx.engine))
    failed = [c for c in checks if not c.ok]

    def shown(check: Check) -> CheckResult:
        if key is None:
            return CheckResult(ok=check.ok)
        if check.fix:
            return CheckResult(ok=check.ok, detail=check.detail, fix=check.fix)
        return CheckResult(ok=check.ok, detail=check.detail)

    readiness = Readiness(
        status="unavailable" if failed else "ok",
        checks=ReadinessChecks.model_validate({c.name: shown(c) for c in checks}),
    )
    if key is None:
        readiness.details = DETAILS_HINT
    # Only the fields set: no detail or fix keys at all for a caller without a key.
    body = readiness.model_dump(mode="json", exclude_unset=True)
    return JSONResponse(body, status_code=503 if failed else 200)


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def scrape_time_collector(ctx: Context) -> metrics.ScrapeTimeCollector:
    engine: Engine = ctx.engine

    def jobs_by_state() -> dict[str, int]:
        with engine.connect() as conn:
            return job_store.counts_by_state(conn)

    def open_breakers() -> dict[str, int]:
        with engine.connect() as conn:
            return ops_store.open_breakers_by_scope(conn)

    def queue_depth() -> dict[str, int]:
        url, queue = ctx.settings.redis_url, ctx.settings.queue
        if not url:
            raise RuntimeError("no broker configured")
        # Celery's Redis transport keeps a queue's waiting messages in a list named after it.
        return {queue: int(_redis(url).llen(queue))}

    def campaigns() -> dict[str, metrics.CampaignJobs]:
        with engine.connect() as conn:
            found = ops_store.live_campaign_counts(conn)
        return {name: metrics.CampaignJobs(state, jobs) for name, (state, jobs) in found.items()}

    def due_now() -> dict[str, int]:
        with engine.connect() as conn:
            due = job_store.due_counts(conn, datetime.now(UTC))
        # Every account reads 0 when nothing is due, so the alert's series never goes missing.
        return {name: due.get(name, 0) for name in sorted({*ctx.accounts, *due})}

    return metrics.ScrapeTimeCollector(
        jobs_by_state, open_breakers, queue_depth, [s.value for s in JobState], campaigns, due_now
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={
        200: {
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "# TYPE outdial_attempts_total counter\n"
                    'outdial_attempts_total{provider="callkaro",result="accepted"} 1841.0\n',
                }
            },
            "description": "The Prometheus text format, summed over the API's and the workers' processes.",
        }
    },
)
def prometheus_metrics(ctx: Context = Depends(context)) -> Response:
    """Every outdial metric: the workers' counters (summed over processes) and the scrape-time gauges."""
    counted = CollectorRegistry()
    if os.environ.get(metrics.MULTIPROC_ENV):
        # The files every process on this host wrote, this one's included.
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
        sources = [counted]
    else:
        sources = [REGISTRY]
    read_now = CollectorRegistry(auto_describe=False)
    read_now.register(scrape_time_collector(ctx))
    body = b"".join(generate_latest(r) for r in (*sources, read_now))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
