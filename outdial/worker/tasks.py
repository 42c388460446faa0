"""Celery tasks, under stable ``outdial.*`` names other services can ``send_task`` to.

Arguments are ids and plain data: never credentials.
"""

from __future__ import annotations

from functools import cache

import httpx
import redis

from outdial import metrics
from outdial.embedded import broker_url
from outdial.errors import OutdialError
from outdial.services.dispatch import Dispatcher, Step
from outdial.services.pacing.pacer import Pacer
from outdial.services.providers.accounts import load_accounts
from outdial.services.shown import mask_numbers
from outdial.settings import get_settings
from outdial.store import jobs as job_store
from outdial.store.db import get_engine
from outdial.worker.app import DISPATCH_TASK, app
from outdial.worker.shown import ShownRequest

# Dispatches that ended the job's call without placing it for sure: shown as FAILURE.
FAILED_DISPATCHES = frozenset({Step.UNKNOWN, Step.REJECTED})


class CallNotPlaced(OutdialError):
    """The dispatch ran and its result is recorded on the job, but no call was surely placed.

    Raised only so Celery monitors show the task as FAILURE with the job's
    reason. It is listed in ``throws`` (no traceback in the log) and is not
    retried: the job's state is committed, and a redial is a human's decision.
    """


@cache
def dispatcher() -> Dispatcher:
    """One per worker process, made after the fork so no connection is shared between processes."""
    settings = get_settings()
    accounts = load_accounts(settings.accounts_file)
    metrics.initialise({a.provider for a in accounts.values()}, accounts)
    return Dispatcher(
        engine=get_engine(),
        settings=settings,
        accounts=accounts,
        client=httpx.Client(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)),
        pacer=Pacer(redis.Redis.from_url(broker_url(settings)), settings),
    )


@app.task(name=DISPATCH_TASK, throws=(CallNotPlaced,), Request=ShownRequest)  # type: ignore[untyped-decorator]
def dispatch_call(job_id: int) -> str:
    """Place the call of job ``job_id`` if it is still queued and inside its window.

    Returns what happened as a word (``accepted``, ``paced:rate``, ``skipped:…``), what Flower
    shows; a call that went ``unknown`` or ``rejected`` fails the task with the job's reason.
    """
    result = dispatcher().dispatch(int(job_id))
    if result.step in FAILED_DISPATCHES:
        with dispatcher().engine.connect() as conn:
            job = job_store.get_job(conn, int(job_id))
        reason = job.reason if job is not None and job.reason else "no reason recorded"
        # Flower and the log show it: a provider's error may quote the number it was given.
        raise CallNotPlaced(f"job {job_id} {result}: {mask_numbers(reason)}")
    return str(result)
