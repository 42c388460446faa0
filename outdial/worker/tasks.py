"""Celery tasks, under stable ``outdial.*`` names other services can ``send_task`` to.

Arguments are ids and plain data: never credentials.
"""

from __future__ import annotations

from functools import cache

import httpx
import redis

from outdial.embedded import broker_url
from outdial.services.dispatch import Dispatcher
from outdial.services.pacing.pacer import Pacer
from outdial.services.providers.accounts import load_accounts
from outdial.settings import get_settings
from outdial.store.db import get_engine
from outdial.worker.app import DISPATCH_TASK, app


@cache
def dispatcher() -> Dispatcher:
    """One per worker process, made after the fork so no connection is shared between processes."""
    settings = get_settings()
    return Dispatcher(
        engine=get_engine(),
        settings=settings,
        accounts=load_accounts(settings.accounts_file),
        client=httpx.Client(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)),
        pacer=Pacer(redis.Redis.from_url(broker_url(settings)), settings),
    )


@app.task(name=DISPATCH_TASK)  # type: ignore[untyped-decorator]
def dispatch_call(job_id: int) -> str:
    """Place the call of job ``job_id`` if it is still queued and inside its window."""
    # The result as a word (``accepted``, ``paced:rate``): what Flower shows.
    return str(dispatcher().dispatch(int(job_id)))
