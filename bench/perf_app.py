"""The worker the performance benchmark runs: outdial's own Celery app, plus one no-op task.

``celery -A bench.perf_app worker ...`` starts exactly what ``outdial worker``
starts (the same app, settings, tasks and pool arguments), with ``bench.noop``
registered next to ``outdial.dispatch_call``. The no-op is the baseline: the
rate at which this worker runs tasks that do nothing but note the time they
ran (one Redis RPUSH), on the same broker, pool and concurrency. ``bench.ideal``
(bench.perf_ideal) is the other: the least work a dispatch's guarantees need.
"""

from __future__ import annotations

import time
from functools import cache

import redis

import outdial.worker.tasks  # noqa: F401  (registers outdial.dispatch_call on the app)
from bench.perf_ideal import IDEAL_TASK, ideal_dispatch
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


@app.task(name=IDEAL_TASK)  # type: ignore[untyped-decorator]
def ideal(job_id: int) -> str:
    """The least work a dispatch's guarantees need (bench.perf_ideal), the second baseline."""
    return ideal_dispatch(int(job_id))


__all__ = ["IDEAL_TASK", "NOOP_TASK", "app", "ideal", "noop"]
