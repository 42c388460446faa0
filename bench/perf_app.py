"""The worker the performance benchmark runs: outdial's own Celery app, plus one no-op task.

``celery -A bench.perf_app worker ...`` starts exactly what ``outdial worker``
starts (the same app, settings, tasks and pool arguments), with ``bench.noop``
registered next to ``outdial.dispatch_call``. The no-op is the baseline: the
rate at which this worker runs tasks that do nothing but note the time they
ran (one Redis RPUSH), on the same broker, pool and concurrency.
"""

from __future__ import annotations

import time
from functools import cache

import redis

import outdial.worker.tasks  # noqa: F401  (registers outdial.dispatch_call on the app)
from outdial.embedded import broker_url
from outdial.settings import get_settings
from outdial.worker.app import app

NOOP_TASK = "bench.noop"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(broker_url(get_settings()))


@app.task(name=NOOP_TASK)  # type: ignore[untyped-decorator]
def noop(key: str) -> None:
    """Nothing, except noting when it ran, for the baseline's rate."""
    _redis().rpush(key, time.time())


__all__ = ["NOOP_TASK", "app", "noop"]
