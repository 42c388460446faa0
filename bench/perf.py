"""``python -m bench perf [--quick]``: outdial's speed, each figure a ratio against a baseline of the same run.

Scenarios, all on private Redis and PostgreSQL servers started for the run:

1. dispatch: jobs due now, through the scheduler process, Redis, a Celery
   worker, the CallKaro adapter, the simulator (0 ms) and PostgreSQL, in calls
   per second (first to last attempt's request), against the rate of a no-op
   Celery task on the same broker, worker, pool and concurrency, and against the
   "ideal task" (bench/perf_ideal.py: the least work the guarantees need, two
   transactions and the request) fed straight to the same worker. With
   ``--workers N``, the same again on N worker processes, reported alongside.
2. latency hiding: the same with 250 ms provider latency, against (1).
3. scheduler cost: ``Scheduler.tick`` claiming and enqueueing 1,000 due jobs
   (real ``send_task`` to Redis) with 1,000,000 jobs scheduled in the future,
   against the same with no backlog.
4. memory: the worker's RSS (with its children) once 1,000,000 jobs are
   scheduled in the future, against the same worker idle before; and the
   naive design (``countdown`` tasks) on the same broker, for comparison.
5. timing accuracy: lateness (request time minus due time) with jobs due at
   500 per second over a stretch of seconds.
6. import: the 1,000,000-row CSV import of ``python -m bench import``.

Prints a table, writes ``bench/results/perf.json`` (``perf-quick.json`` with
``--quick``), and prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, naive_eta
from bench.perf_env import PerfEnv, later, now_utc, rss_tree

TARGETS = {
    "dispatch_ratio": ">= 0.7",
    "dispatch_ideal_ratio": ">= 0.85",
    "paced_ideal_ratio": ">= 0.75",
    "latency_hiding_ratio": ">= 0.8",
    "scheduler_backlog_ratio": "<= 1.5",
    "worker_memory_ratio": "<= 1.2",
    "naive_eta_memory_ratio": "(comparison)",
    "lateness_p50_s": "",
    "lateness_p99_s": "<= 1.0",
    "import_rows_per_s": "",
    "import_floor_ratio": "(bench import)",
}


@dataclass(frozen=True)
class Sizes:
    calls: int  # jobs per dispatch run
    repeats: int  # dispatch and latency runs (median)
    scheduler_due: int
    scheduler_repeats: int
    backlog: int
    warm_calls: int
    lateness_rate: float
    lateness_seconds: float
    naive_tasks: int
    import_rows: int

    @staticmethod
    def of(quick: bool) -> Sizes:
        if quick:
            return Sizes(200, 1, 500, 3, 50_000, 60, 50, 4, 1_000, 10_000)
        return Sizes(1000, 3, 1000, 5, 1_000_000, 200, 500, 10, 10_000, 1_000_000)


def log(message: str) -> None:
    print(f"perf: {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


# --- 1 and 2: dispatch ------------------------------------------------------------------


def dispatch_run(env: PerfEnv, calls: int, paced: bool = False) -> dict[str, Any]:
    lo, hi = env.insert_jobs(calls, now_utc() - timedelta(seconds=1), paced=paced)
    result = env.wait_attempts(lo, hi, timeout_s=max(60.0, calls / 5))
    env.clear_jobs(lo, hi)
    return result


def start_dispatch_workers(env: PerfEnv, workers: int) -> list[str]:
    names = [f"worker-{n + 1}" if n else "worker" for n in range(workers)]
    for name in names:
        env.start_worker(name)
    return names


def dispatch_repetitions(env: PerfEnv, sizes: Sizes, latency: bool, label: str) -> dict[str, Any]:
    """The no-op, the ideal task and outdial's dispatch without and with account limits (and at 250 ms
    with ``latency``), each repetition in that order on the same workers (the two dispatch runs
    taking turns going first); the medians and the ratios' medians."""
    dispatch_run(env, sizes.warm_calls)
    env.noop_run(sizes.warm_calls)
    env.ideal_run(sizes.warm_calls)
    noop_rates, ideal_rates, call_rates, paced_rates, slow_rates = [], [], [], [], []
    runs: list[dict[str, Any]] = []
    for i in range(sizes.repeats):
        noop = env.noop_run(sizes.calls)
        env.configure_sim(latency_ms=0)
        ideal = env.ideal_run(sizes.calls)
        # The two dispatch runs take turns going first: each run leaves work behind (its jobs deleted,
        # autovacuum), so a fixed order would tax one of them every time.
        if i % 2:
            paced = dispatch_run(env, sizes.calls, paced=True)
            fast = dispatch_run(env, sizes.calls)
        else:
            fast = dispatch_run(env, sizes.calls)
            paced = dispatch_run(env, sizes.calls, paced=True)
        run = {"noop": noop, "ideal": ideal, "dispatch_0ms": fast, "dispatch_paced": paced}
        noop_rates.append(noop["rate_per_s"])
        ideal_rates.append(ideal["rate_per_s"])
        call_rates.append(fast["rate_per_s"])
        paced_rates.append(paced["rate_per_s"])
        slow_text = ""
        if latency:
            env.configure_sim(latency_ms=250)
            slow = dispatch_run(env, sizes.calls)
            env.configure_sim(latency_ms=0)
            slow_rates.append(slow["rate_per_s"])
            run["dispatch_250ms"] = slow
            slow_text = f", at 250 ms {slow['rate_per_s']:.0f}/s ({slow['attempts']}/{slow['expected']})"
        runs.append(run)
        log(
            f"{label} run {i + 1}: no-op {noop['rate_per_s']:.0f}/s, ideal {ideal['rate_per_s']:.0f}/s "
            f"({ideal['attempts']}/{ideal['expected']}), dispatch {fast['rate_per_s']:.0f}/s "
            f"({fast['attempts']}/{fast['expected']}), paced {paced['rate_per_s']:.0f}/s "
            f"({paced['attempts']}/{paced['expected']}){slow_text}"
        )
    part: dict[str, Any] = {
        "calls_per_run": sizes.calls,
        "runs": runs,
        "noop_per_s": median(noop_rates),
        "ideal_per_s": median(ideal_rates),
        "dispatch_per_s": median(call_rates),
        "dispatch_ratio": round(median([c / n for c, n in zip(call_rates, noop_rates, strict=True) if n]), 3),
        "dispatch_ideal_ratio": round(median([c / i for c, i in zip(call_rates, ideal_rates, strict=True) if i]), 3),
        "dispatch_paced_per_s": median(paced_rates),
        "paced_ideal_ratio": round(median([p / i for p, i in zip(paced_rates, ideal_rates, strict=True) if i]), 3),
    }
    if latency:
        part["dispatch_250ms_per_s"] = median(slow_rates)
        part["latency_hiding_ratio"] = round(
            median([s / c for s, c in zip(slow_rates, call_rates, strict=True) if c]), 3
        )
    return part


def dispatch_scenarios(env: PerfEnv, sizes: Sizes, report: dict[str, Any], workers: int) -> None:
    """On one worker process: every dispatch figure. With ``workers`` > 1, the same again (no
    latency runs) on that many processes, reported next to it under ``dispatch_workers``."""
    log("warming up 1 worker")
    names = start_dispatch_workers(env, 1)
    env.start_scheduler()
    part = dispatch_repetitions(env, sizes, latency=True, label="1 worker:")
    report["dispatch"] = part
    for key in ("dispatch_ratio", "dispatch_ideal_ratio", "paced_ideal_ratio", "latency_hiding_ratio"):
        report[key] = part[key]
    for name in names:
        env.kill(name)
    if workers > 1:
        log(f"warming up {workers} workers")
        names = start_dispatch_workers(env, workers)
        more = dispatch_repetitions(env, sizes, latency=False, label=f"{workers} workers:")
        more["workers"] = workers
        more["scaling"] = round(more["dispatch_per_s"] / part["dispatch_per_s"], 3) if part["dispatch_per_s"] else None
        more["ideal_scaling"] = round(more["ideal_per_s"] / part["ideal_per_s"], 3) if part["ideal_per_s"] else None
        report["dispatch_workers"] = more
        for name in names:
            env.kill(name)
    env.kill("scheduler")


# --- 3: scheduler -----------------------------------------------------------------------


def scheduler_round(env: PerfEnv, due: int, publish: bool = True) -> float:
    """Seconds for ``Scheduler.tick`` to claim and send ``due`` jobs that are due now
    (with ``publish`` false, ``send_job`` does nothing: the database side alone)."""
    from bench.perf_app import app
    from outdial.scheduler.loop import Scheduler
    from outdial.worker.app import DISPATCH_TASK

    queue = "perf.scheduler"

    def send(job_id: int) -> None:
        app.send_task(DISPATCH_TASK, args=[job_id], queue=queue)

    def skip(job_id: int) -> None:
        pass

    lo, hi = env.insert_jobs(due, now_utc() - timedelta(seconds=1))
    scheduler = Scheduler(env.db, env.settings, send if publish else skip)
    sent = 0
    started = time.perf_counter()
    while sent < due:
        report = scheduler.tick()
        sent += len(report.enqueued)
        if not report.enqueued:
            raise RuntimeError(f"scheduler claimed only {sent} of {due} due jobs")
    took = time.perf_counter() - started
    env.clear_jobs(lo, hi)
    env.redis().delete(queue)
    return took


def _r(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def scheduler_scenario(env: PerfEnv, sizes: Sizes, report: dict[str, Any], backlog: Callable[[], None]) -> None:
    due, repeats = sizes.scheduler_due, sizes.scheduler_repeats
    scheduler_round(env, due)  # warm: compiled queries, connections
    bare = [scheduler_round(env, due) for _ in range(repeats)]
    bare_db = [scheduler_round(env, due, publish=False) for _ in range(repeats)]
    log(f"scheduler, no backlog: {_r(bare)} s; database side {_r(bare_db)} s")
    backlog()
    scheduler_round(env, due)
    loaded = [scheduler_round(env, due) for _ in range(repeats)]
    loaded_db = [scheduler_round(env, due, publish=False) for _ in range(repeats)]
    log(f"scheduler, {sizes.backlog:,} backlog: {_r(loaded)} s; database side {_r(loaded_db)} s")
    report["scheduler"] = {
        "due_jobs": sizes.scheduler_due,
        "backlog": sizes.backlog,
        "send_job": "celery send_task to Redis",
        "batch": env.settings.scheduler_batch,
        "no_backlog_s": bare,
        "backlog_s": loaded,
        "no_backlog_database_side_s": bare_db,
        "backlog_database_side_s": loaded_db,
        "database_side_ratio": round(median(loaded_db) / median(bare_db), 3),
    }
    report["scheduler_backlog_ratio"] = round(median(loaded) / median(bare), 3)


# --- 4: memory --------------------------------------------------------------------------


def memory_sample(env: PerfEnv, pid: int, calls: int) -> int:
    """Dispatch a few calls, let the worker go idle, and take its RSS (median of samples)."""
    dispatch_run(env, calls)
    time.sleep(2)
    return naive_eta.settled_rss(pid)


# --- 5: lateness ------------------------------------------------------------------------


def lateness_run(env: PerfEnv, rate: float, seconds: float) -> dict[str, Any]:
    count = int(rate * seconds)
    lo, hi = env.insert_jobs(count, later(2.0), per_second=rate)
    result = env.wait_attempts(lo, hi, timeout_s=seconds + 300)
    env.clear_jobs(lo, hi)
    result["due_per_s"] = rate
    result.pop("last_response", None)
    return result


# --- the run ----------------------------------------------------------------------------


def run(quick: bool, pool: str, concurrency: int, only: set[str] | None = None, workers: int = 1) -> dict[str, Any]:
    sizes = Sizes.of(quick)
    report: dict[str, Any] = {key: None for key in TARGETS}
    report["pool"] = {"pool": pool, "concurrency": concurrency, "dispatch_workers": workers}
    report["quick"] = quick
    started = time.monotonic()
    env = PerfEnv(pool, concurrency)
    wanted = only or {"dispatch", "scheduler", "memory", "lateness", "naive", "import"}
    try:
        log(f"starting private Redis and PostgreSQL in {env.workdir}")
        env.start()
        if "dispatch" in wanted:
            dispatch_scenarios(env, sizes, report, workers)
        if wanted & {"scheduler", "memory", "lateness"}:
            # A fresh worker for the memory figure: idle after a few calls, then the same with the backlog.
            proc = env.start_worker("worker")
            env.start_scheduler()
            memory_sample(env, proc.pid, sizes.warm_calls)
            idle = memory_sample(env, proc.pid, sizes.warm_calls)
            env.kill("scheduler")  # the scheduler scenario ticks in this process

            def backlog() -> None:
                log(f"inserting {sizes.backlog:,} future jobs")
                t = time.perf_counter()
                env.insert_backlog(sizes.backlog, later(86400))
                report["backlog_insert_s"] = round(time.perf_counter() - t, 1)

            if "scheduler" in wanted:
                scheduler_scenario(env, sizes, report, backlog)
            else:
                backlog()
            env.start_scheduler()
            loaded = memory_sample(env, proc.pid, sizes.warm_calls)
            time.sleep(5)  # the scheduler ticking over the backlog a while longer
            loaded = max(loaded, naive_eta.settled_rss(proc.pid))
            report["memory"] = {
                "backlog": sizes.backlog,
                "idle_rss_mb": round(idle / 1e6, 1),
                "backlog_rss_mb": round(loaded / 1e6, 1),
            }
            report["worker_memory_ratio"] = round(loaded / idle, 3)
            log(f"memory: idle {idle / 1e6:.1f} MB, with backlog {loaded / 1e6:.1f} MB")
            if "lateness" in wanted:
                runs = [lateness_run(env, sizes.lateness_rate, sizes.lateness_seconds)]
                log(f"lateness at {sizes.lateness_rate:.0f}/s: {runs[-1]}")
                sustained = runs[-1]["rate_per_s"]
                if runs[-1]["lateness_p99_s"] is None or runs[-1]["lateness_p99_s"] > 1.0:
                    # Beyond the machine: what it does at a rate it can sustain.
                    rate = max(10.0, round(0.8 * min(sustained, sizes.lateness_rate)))
                    runs.append(lateness_run(env, rate, sizes.lateness_seconds))
                    log(f"lateness at {rate:.0f}/s: {runs[-1]}")
                report["lateness"] = runs
            report["memory"]["worker_rss_after_lateness_mb"] = round(rss_tree(proc.pid) / 1e6, 1)
            env.kill("scheduler")
            env.kill("worker")
        if "naive" in wanted:
            log(f"naive design: {sizes.naive_tasks:,} countdown tasks")
            naive = naive_eta.run(env, sizes.naive_tasks)
            report["naive_eta"] = naive
            report["naive_eta_memory_ratio"] = round(naive["ratio"], 3)
    finally:
        env.stop()
    if "import" in wanted:
        report.update(import_figures(sizes.import_rows))
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"] = machine()
    return report


def lateness_figures(report: dict[str, Any]) -> None:
    """The lateness keys: at the target rate when the machine kept up with it; otherwise at the
    rate it did sustain (``lateness_due_per_s`` says which; every run is in ``lateness``)."""
    runs = report.get("lateness") or []
    if not runs:
        return
    chosen = runs[0]
    if len(runs) > 1 and (chosen["lateness_p99_s"] is None or chosen["lateness_p99_s"] > 1.0):
        chosen = runs[-1]
    report["lateness_p50_s"] = _round(chosen["lateness_p50_s"])
    report["lateness_p99_s"] = _round(chosen["lateness_p99_s"])
    report["lateness_due_per_s"] = chosen["due_per_s"]
    report["lateness_target_rate_p99_s"] = _round(runs[0]["lateness_p99_s"])
    report["lateness_target_rate_sustained_per_s"] = round(runs[0]["rate_per_s"], 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def import_figures(rows: int) -> dict[str, Any]:
    try:
        from bench import import_bench
    except ImportError as exc:
        return {"import_note": f"no import benchmark: {exc}"}
    log(f"import benchmark, {rows:,} rows")
    figures = import_bench.run(rows)
    return {
        "import": figures,
        "import_rows_per_s": figures.get("import_rows_per_s"),
        "import_floor_ratio": figures.get("import_floor_ratio"),
    }


def machine() -> dict[str, Any]:
    import os
    import platform

    import psutil

    model = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": model,
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def table(report: dict[str, Any]) -> str:
    details = {
        "dispatch_ratio": _detail(report, "dispatch", "dispatch {dispatch_per_s:.0f}/s vs no-op {noop_per_s:.0f}/s"),
        "dispatch_ideal_ratio": _detail(report, "dispatch", "vs the ideal task {ideal_per_s:.0f}/s"),
        "paced_ideal_ratio": _detail(report, "dispatch", "dispatch with account limits {dispatch_paced_per_s:.0f}/s"),
        "latency_hiding_ratio": _detail(report, "dispatch", "{dispatch_250ms_per_s:.0f}/s at 250 ms"),
        "scheduler_backlog_ratio": _scheduler_detail(report),
        "worker_memory_ratio": _detail(report, "memory", "{idle_rss_mb} MB idle, {backlog_rss_mb} MB with backlog"),
        "naive_eta_memory_ratio": _detail(
            report, "naive_eta", "{eta_tasks} eta tasks: {idle_rss_mb:.0f} -> {loaded_rss_mb:.0f} MB"
        ),
        "lateness_p50_s": f"at {report.get('lateness_due_per_s')} due per s" if report.get("lateness") else "",
        "lateness_p99_s": _lateness_detail(report),
        "import_rows_per_s": _detail(report, "import", "{rows:,} rows in {import_seconds} s"),
    }
    lines = [f"{'figure':<26}{'value':>12}  {'target':<14}detail", "-" * 100]
    for key, target in TARGETS.items():
        value = report.get(key)
        shown = "null" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:.3f}"
        lines.append(f"{key:<26}{shown:>12}  {target:<14}{details.get(key, '')}")
    more = report.get("dispatch_workers")
    if isinstance(more, dict):
        lines.append(
            f"dispatch on {more['workers']} worker processes: {more['dispatch_per_s']:.0f}/s "
            f"(x{more['scaling']} of 1 process), ideal {more['ideal_per_s']:.0f}/s (x{more['ideal_scaling']}), "
            f"no-op {more['noop_per_s']:.0f}/s; dispatch_ratio {more['dispatch_ratio']:.3f}, "
            f"dispatch_ideal_ratio {more['dispatch_ideal_ratio']:.3f}"
        )
    pool = report.get("pool", {})
    lines.append(
        f"worker: --pool {pool.get('pool')} --concurrency {pool.get('concurrency')}"
        f" (dispatch and latency on 1 process; {pool.get('dispatch_workers', 1)} for the scaling run)"
    )
    return "\n".join(lines)


def _detail(report: dict[str, Any], key: str, fmt: str) -> str:
    part = report.get(key)
    if not isinstance(part, dict):
        return ""
    try:
        return fmt.format(**part)
    except (KeyError, ValueError, TypeError):
        return ""


def _scheduler_detail(report: dict[str, Any]) -> str:
    part = report.get("scheduler")
    if not part:
        return ""
    text = (
        f"{part['due_jobs']} due: {median(part['no_backlog_s']):.3f} s bare, "
        f"{median(part['backlog_s']):.3f} s with {part['backlog']:,} future"
    )
    if "database_side_ratio" in part:
        text += f" (database side alone: {part['database_side_ratio']:.2f})"
    return text


def _lateness_detail(report: dict[str, Any]) -> str:
    runs = report.get("lateness") or []
    return "; ".join(
        f"due {r['due_per_s']:.0f}/s -> ran {r['rate_per_s']:.0f}/s, p50 {r['lateness_p50_s']:.3f} s, "
        f"p99 {r['lateness_p99_s']:.3f} s"
        for r in runs
        if r.get("lateness_p99_s") is not None
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench perf", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every scenario at a small size (CI; ~2 minutes)")
    parser.add_argument("--pool", default="threads", help="the worker's Celery pool (default threads)")
    parser.add_argument("--concurrency", type=int, default=64, help="the worker's threads or processes")
    parser.add_argument("--only", default=None, help="comma-separated: dispatch,scheduler,memory,lateness,naive,import")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="with 2 or more: the dispatch scenario again on that many worker processes, reported alongside",
    )
    parser.add_argument("--render", default=None, help="print the table and summary of a saved report, run nothing")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    # A terminated run still stops its servers and processes (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = REPO_ROOT / "bench" / "results"
    name = "perf-quick.json" if args.quick else "perf.json"
    if args.render:
        report, name = json.loads(Path(args.render).read_text()), args.render
    else:
        report = run(args.quick, args.pool, args.concurrency, only, args.workers)
    lateness_figures(report)
    if not args.render:
        results.mkdir(parents=True, exist_ok=True)
        (results / name).write_text(json.dumps(report, indent=2, default=str) + "\n")
        name = f"bench/results/{name}"
    print(table(report))
    summary = {key: report.get(key) for key in TARGETS}
    summary |= {"lateness_due_per_s": report.get("lateness_due_per_s"), "details": name}
    more = report.get("dispatch_workers")
    if isinstance(more, dict):
        summary["dispatch_workers"] = {
            k: more.get(k) for k in ("workers", "dispatch_per_s", "ideal_per_s", "scaling", "dispatch_ideal_ratio")
        }
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
