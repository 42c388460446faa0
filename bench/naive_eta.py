"""The naive design, measured for comparison: one Celery task per future call, parked with ``countdown``.

Celery workers take every ``eta``/``countdown`` task they see off the queue at
once and hold it in memory until it is due (the prefetch limit is raised for
each one), so the worker's memory grows with the number of calls scheduled in
the future. This is what outdial's design avoids by keeping future calls in
the database. Measured on the same broker, with the same app, pool and
concurrency as the engine's worker, at a size it survives.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.perf_env import PerfEnv, rss_tree

QUEUE = "perf.naive"


def settled_rss(pid: int, samples: int = 5, every_s: float = 0.2) -> int:
    values = []
    for _ in range(samples):
        values.append(rss_tree(pid))
        time.sleep(every_s)
    return int(statistics.median(values))


def run(env: PerfEnv, tasks: int, countdown_s: int = 3600) -> dict[str, Any]:
    from bench.perf_app import NOOP_TASK, app

    proc = env.start_worker("worker-naive", QUEUE)
    try:
        time.sleep(2)
        idle = settled_rss(proc.pid)
        client = env.redis()
        started = time.monotonic()
        # Published as fast as possible (one producer, no sent events): only what the worker holds matters.
        with app.producer_or_acquire() as producer:
            for _ in range(tasks):
                app.send_task(
                    NOOP_TASK,
                    args=["perf:naive:never"],
                    queue=QUEUE,
                    countdown=countdown_s,
                    producer=producer,
                    send_events=False,
                )
        # Wait for the worker to take them all off the queue, then for its memory to settle.
        deadline = time.monotonic() + 300
        while client.llen(QUEUE) and time.monotonic() < deadline:
            time.sleep(0.2)
        held = client.hlen("unacked")
        last, stable_since = 0, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - stable_since < 3:
            now = rss_tree(proc.pid)
            if abs(now - last) > 1_000_000:
                last, stable_since = now, time.monotonic()
            time.sleep(0.3)
        loaded = settled_rss(proc.pid)
        took = time.monotonic() - started
    finally:
        env.kill("worker-naive")
        client = env.redis()
        client.delete(QUEUE, "unacked", "unacked_index")
    return {
        "eta_tasks": tasks,
        "held_by_worker": held,
        "idle_rss_mb": idle / 1e6,
        "loaded_rss_mb": loaded / 1e6,
        "ratio": loaded / idle,
        "seconds": took,
    }
