"""Pacing seen from the provider's side: ``python -m bench pacing [--quick]``.

Two worker processes and a scheduler dial one simulated account with plenty
of due work, once limited by calls per second and once by concurrent calls.
The simulator counts what arrives: the busiest one-second window and the
most concurrent calls must never pass the limit, and the long-run average
should reach 95% of it. One JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import REPO_ROOT
from bench.chaos import environment, toml_value
from bench.services import PrivatePostgres, PrivateRedis, free_port
from outdial.settings import get_settings, reset_settings
from outdial.stack import Stack
from outdial.store.db import make_engine

# Ports of its own: a chaos run (CI's, say) on the same machine must not meet this one.
REDIS_PORT, PG_PORT, API_PORT, SIM_PORT = 6397, 5497, 18440, 18441


def write_account(path: Path, limits: dict[str, float]) -> None:
    import tomllib

    raw = tomllib.loads((REPO_ROOT / "config" / "accounts.toml").read_text())["accounts"]["sim-callkaro"]
    raw = {**raw, "limits": limits}
    lines = ["[accounts.sim-callkaro]", *(f"{k} = {toml_value(v)}" for k, v in raw.items())]
    path.write_text("\n".join(lines) + "\n")


def scenario(
    name: str, limits: dict[str, float], jobs: int, call_s: float, workdir: Path, db_url: str, redis_url: str
) -> dict[str, Any]:
    from outdial.services.intake.enqueue import CallBody, enqueue_call

    accounts = workdir / f"{name}.toml"
    write_account(accounts, limits)
    api_port, sim_port = free_port(API_PORT), free_port(SIM_PORT)
    os.environ.update(environment(workdir / name, accounts, db_url, redis_url, api_port, sim_port))
    os.environ["OUTDIAL_QUEUE"] = f"outdial.pacing.{name}"
    os.environ["OUTDIAL_PACING_PREFIX"] = f"outdial:pacing:{name}"
    reset_settings()
    stack = Stack(get_settings(), workdir / name / "logs", worker_args=["--pool", "threads", "--concurrency", "16"])
    try:
        stack.start()
        stack.spawn("worker", "worker-2")
        sim = f"http://127.0.0.1:{sim_port}"
        httpx.post(f"{sim}/_sim/reset")
        httpx.post(f"{sim}/_sim/config/callkaro", json={"outcome_delay_s": call_s, "latency_ms": 5})
        engine = make_engine(db_url)
        now = datetime.now(UTC)
        for i in range(jobs):
            body = CallBody(to_number=f"+1212555{6000 + i:04d}", account="sim-callkaro", callee_hours=None)
            enqueue_call(engine, body, now, get_settings())
        engine.dispose()
        deadline = time.monotonic() + 60 + jobs / 2
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = httpx.get(f"{sim}/_sim/stats", params={"times": True}).json()["providers"]["callkaro"]
            if stats["accepted"] >= jobs and stats["active_calls"] == 0:
                break
            time.sleep(0.5)
    finally:
        stack.stop()
    (workdir / f"{name}-accept-times.json").write_text(json.dumps(stats.get("accept_times", [])))
    calls = stats.get("accepted", 0)
    span = stats.get("accept_span_s") or 0.0
    result: dict[str, Any] = {
        "calls": calls,
        "span_s": round(span, 2),
        "max_calls_per_second": stats.get("max_calls_per_second"),
    }
    if "calls_per_second" in limits:
        average = (calls - 1) / span if span else 0.0
        result |= {
            "limit": limits["calls_per_second"],
            "average_per_second": round(average, 2),
            "average_share_of_limit": round(average / limits["calls_per_second"], 3),
            "over_limit": int(stats.get("max_calls_per_second", 0) > limits["calls_per_second"]),
        }
    else:
        limit = limits["max_concurrent"]
        # Every call lasts call_s, so calls x call_s / span is the average number in progress.
        average = calls * call_s / span if span else 0.0
        result |= {
            "limit": limit,
            "max_active_calls": stats.get("max_active_calls"),
            "average_active_calls": round(average, 2),
            "average_share_of_limit": round(average / limit, 3),
            "over_limit": int(stats.get("max_active_calls", 0) > limit),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pacing", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="outdial-pacing-"))
    workdir.chmod(0o755)
    redis_server = PrivateRedis(free_port(REDIS_PORT), workdir / "redis")
    postgres = PrivatePostgres(free_port(PG_PORT), workdir / "pg")
    try:
        redis_server.start()
        postgres.start()
        from outdial.store.db import upgrade

        upgrade(postgres.url)
        jobs = 120 if args.quick else 600
        report = {
            "rate": scenario("rate", {"calls_per_second": 10}, jobs, 0.2, workdir, postgres.url, redis_server.url),
            "concurrency": scenario(
                "concurrency", {"max_concurrent": 5}, jobs // 2, 2.0, workdir, postgres.url, redis_server.url
            ),
        }
    finally:
        redis_server.stop()
        postgres.stop()
    (REPO_ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO_ROOT / "bench" / "results" / "pacing.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return 0 if not (report["rate"]["over_limit"] or report["concurrency"]["over_limit"]) else 1


if __name__ == "__main__":
    sys.exit(main())
