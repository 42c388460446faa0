"""Per-call CPU of each part of a dispatch, in one process, one call at a time, next to the ideal task.

``python -m bench parts [--calls N]``: on the same private PostgreSQL, Redis and simulator as
``bench perf`` (``bench.perf_env``), N queued jobs are dispatched in this process by outdial's
own dispatcher, first on the plain account, then on the account with pacing limits, then N
through the ideal task. Each part is timed with ``time.thread_time`` (this thread's CPU, so
neither waits nor the other processes count). No Celery: what is left is the dispatch's own
work, which a worker process pays on top of Celery's.

This is the profile behind ``docs/benchmarks.md``'s per-part table, not a judged figure.
"""

from __future__ import annotations

import argparse
import functools
import json
import pkgutil
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench.perf_env import PerfEnv, now_utc

# (``pkgutil.resolve_name`` path, attribute, label): the parts timed on the dispatch path.
PARTS = (
    ("outdial.store.jobs", "job_to_dispatch", "job read"),
    ("outdial.store.jobs", "begin_dial", "queued -> dialing + attempt"),
    ("outdial.store.jobs", "accept_answer", "answer + accepted"),
    ("outdial.store.events", "lock_call", "call lock"),
    ("outdial.services.dispatch", "send", "HTTP request"),
    ("outdial.services.dispatch:Dispatcher", "_prepare", "building the request"),
    ("outdial.services.dispatch:Dispatcher", "_hold", "hold checks (rule 7)"),
    ("outdial.services.dispatch:metrics", "observe_dial", "metrics"),
    ("outdial.services.pacing.pacer:Pacer", "admit", "pacer: admission"),
    ("outdial.services.pacing.pacer:Pacer", "clear_to_send", "pacer: room to send"),
    ("outdial.services.pacing.pacer:Pacer", "sent", "pacer: written"),
    ("outdial.services.pacing.pacer:Pacer", "after", "pacer: after"),
)


def _timed(spent: dict[str, float], label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.thread_time() - began

    return timed


def run(calls: int) -> dict[str, Any]:
    env = PerfEnv("threads", 1)
    env.start()
    try:
        from bench.perf_ideal import ideal_dispatch
        from outdial.services.pacing.limits import seeded_key
        from outdial.worker.tasks import dispatcher

        dispatch = dispatcher()
        spent: defaultdict[str, float] = defaultdict(float)  # label -> seconds of CPU
        for path, name, label in PARTS:
            owner = pkgutil.resolve_name(path)
            setattr(owner, name, _timed(spent, label, getattr(owner, name)))
        # The leading scheduler would have seeded the slots and send windows; none runs here.
        env.redis().set(seeded_key(dispatch.settings.pacing_prefix), 1)
        report: dict[str, Any] = {"calls": calls}
        runs: list[tuple[str, Callable[[int], object], bool]] = [
            ("warm-up", dispatch.dispatch, False),
            ("plain", dispatch.dispatch, False),
            ("paced", dispatch.dispatch, True),
            ("ideal", ideal_dispatch, False),
        ]
        for label, function, paced in runs:
            lo, hi = env.insert_jobs(calls, now_utc() - timedelta(seconds=1), state="queued", paced=paced)
            spent.clear()
            began = time.thread_time()
            for job_id in range(lo, hi + 1):
                function(job_id)
            total = time.thread_time() - began
            env.clear_jobs(lo, hi)
            if label == "warm-up":
                continue
            by_cost = sorted(spent.items(), key=lambda item: -item[1])
            report[label] = {
                "per_call_us": round(total / calls * 1e6),
                "parts_us": {part: round(seconds / calls * 1e6) for part, seconds in by_cost if seconds},
            }
        return report
    finally:
        env.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench parts", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500, help="calls per run (default 1500)")
    args = parser.parse_args(argv)
    report = run(args.calls)
    for label in ("plain", "paced", "ideal"):
        print(f"{label}: {report[label]['per_call_us']} µs of CPU a call")
        for part, micros in report[label]["parts_us"].items():
            print(f"    {part:<30} {micros:>6}")
    print(json.dumps(report))
    return 0
