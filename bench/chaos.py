"""The chaos suite: ``python -m bench chaos [--quick] [--seed N | --seeds 1,2,3] [--leads N]``.

Thousands of leads over the five simulated providers with injected 429s, 5xx,
time-outs, dropped connections and duplicated webhooks, while workers are
killed with SIGKILL, Redis and PostgreSQL restart and the leading scheduler is
killed; Redis is also emptied with FLUSHALL while everything runs, restarted
several times in a row under workers that must stay up (the harness never
restarts them, and counts any that exit), and a worker is stopped with SIGSTOP
between its read of a job and its state change until that job is queued for a
later attempt (``outdial.faults``). Then the invariant checker reads the database and the simulators'
counts, and the report is printed as one JSON object on the last line.

Everything runs on private servers (a Redis and a PostgreSQL cluster of its
own, on private ports), so the restarts disturb nobody else on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import REPO_ROOT
from bench.invariants import check, read_jobs
from bench.services import PrivatePostgres, PrivateRedis, free_port
from outdial.services.providers.accounts import load_accounts
from outdial.settings import get_settings, reset_settings
from outdial.stack import Stack, dispatch_results, hand_back_share
from outdial.store.db import make_engine

REDIS_PORT, PG_PORT, API_PORT, SIM_PORT = 6398, 5498, 18430, 18431
LEADER_KEY = "outdial:scheduler:leader"

# What each simulated provider does wrong, and how often.
FAULTS = {
    "latency_ms": 20,
    "rate_429_rate": 0.03,
    "error_5xx_rate": 0.03,
    "timeout_rate": 0.02,
    "timeout_s": 4.0,
    "drop_rate": 0.02,
    "webhook_duplicate_rate": 0.3,
    "outcome_mix": {"completed": 0.6, "no_answer": 0.2, "busy": 0.1, "failed": 0.1},
    "outcome_delay_s": 1.0,
}
# The limits every account is held to. The simulators do not enforce them: they only
# measure, so any excess shows in the report instead of being refused.
CALLS_PER_SECOND = 8
MAX_CONCURRENT = 6


def chaos_accounts(path: Path) -> list[str]:
    """The shipped sim-* accounts, with the chaos limits, written to ``path``; their names."""
    shipped = tomllib.loads((REPO_ROOT / "config" / "accounts.toml").read_text())["accounts"]
    lines: list[str] = []
    names = []
    for name, raw in shipped.items():
        if not name.startswith("sim-"):
            continue
        names.append(name)
        raw = {**raw, "limits": {"calls_per_second": CALLS_PER_SECOND, "max_concurrent": MAX_CONCURRENT}}
        lines.append(f"[accounts.{name}]")
        for key, value in raw.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    path.write_text("\n".join(lines))
    return names


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string is JSON-quoted text


def environment(
    workdir: Path,
    accounts_file: Path,
    database_url: str,
    redis_url: str,
    api_port: int = API_PORT,
    sim_port: int = SIM_PORT,
) -> dict[str, str]:
    return {
        "OUTDIAL_DATABASE_URL": database_url,
        "OUTDIAL_REDIS_URL": redis_url,
        "OUTDIAL_ACCOUNTS_FILE": str(accounts_file),
        "OUTDIAL_DATA_DIR": str(workdir / "var"),
        "OUTDIAL_QUEUE": "outdial.chaos",
        "OUTDIAL_API_PORT": str(api_port),
        "OUTDIAL_SIMULATOR_PORT": str(sim_port),
        "OUTDIAL_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "OUTDIAL_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}",
        "OUTDIAL_SCHEDULER_INTERVAL_S": "0.2",
        "OUTDIAL_LEADER_LEASE_S": "2",
        # Short leases and waits, so recoveries happen within the run.
        "OUTDIAL_QUEUED_LEASE_S": "6",
        "OUTDIAL_DIALING_LEASE_S": "10",
        "OUTDIAL_ACCEPTED_LEASE_S": "45",
        "OUTDIAL_POLL_AFTER_S": "8",
        # Simulated calls last about a second: a slot whose call went unknown is free after 20 s.
        "OUTDIAL_SLOT_LEASE_S": "20",
        "OUTDIAL_POLL_INTERVAL_S": "4",
        "OUTDIAL_PROVIDER_READ_TIMEOUT_S": "2",
        "OUTDIAL_TRANSPORT_BACKOFF_BASE_S": "0.2",
        "OUTDIAL_TRANSPORT_BACKOFF_CAP_S": "2",
        "OUTDIAL_TRANSPORT_MAX_RETRIES": "10",
        # The run is about delivery under faults; a breaker pausing accounts would only hide them.
        "OUTDIAL_BREAKER_MIN_CALLS": "1000000",
        "OUTDIAL_LOG_FORMAT": "json",
        # Lets the harness stop a worker at an exact point of its dispatch (outdial.faults).
        "OUTDIAL_FAULT_DIR": str(workdir / "faults"),
    }


def enqueue_leads(count: int, accounts: list[str], seed: int) -> None:
    from outdial.services.intake.enqueue import CallBody, enqueue_call

    rng = random.Random(seed)
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url())
    now = datetime.now(UTC)
    closes = (now + timedelta(minutes=2)).strftime("%H:%M")
    opened = (now - timedelta(hours=1)).strftime("%H:%M")
    for i in range(count):
        timing: dict[str, Any] = {"number_of_retries": 1, "gap_between_retries": 0, "callee_hours": None}
        if i % 3 == 0:
            # A window that closes mid-run without carry-over: dialling after it would be a violation.
            timing |= {"timezone": "UTC", "min_trigger_time": opened, "max_trigger_time": closes}
        body = CallBody(
            to_number=f"+1{rng.choice(['212', '312', '415', '617'])}555{i:04d}",
            account=accounts[i % len(accounts)],
            metadata={"name": f"lead {i}"},
            **timing,
        )
        enqueue_call(engine, body, now, settings)
    engine.dispose()


class Faults:
    """The faults of one run, in an order drawn from the seed."""

    def __init__(
        self,
        stack: Stack,
        redis_server: PrivateRedis,
        postgres: PrivatePostgres | None,
        seed: int,
        fault_dir: Path | None = None,
        database_url: str | None = None,
    ):
        self.stack, self.redis_server, self.postgres = stack, redis_server, postgres
        self.rng = random.Random(seed)
        self.log: list[dict[str, Any]] = []
        self.fault_dir, self.database_url = fault_dir, database_url
        # Workers that exited on their own (not by a SIGKILL of the harness): each one is a violation.
        self.worker_exits: list[dict[str, Any]] = []

    def plan(self, count: int) -> list[Callable[[], str]]:
        kinds: list[Callable[[], str]] = [self.kill_worker, self.kill_worker, self.kill_leader, self.restart_redis]
        kinds += [self.flushall, self.restart_redis_repeatedly]
        if self.postgres is not None:
            kinds.append(self.restart_postgres)
        order = [kinds[i % len(kinds)] for i in range(max(count, len(kinds)))]
        self.rng.shuffle(order)
        if self.fault_dir is not None and self.database_url is not None:
            # First, while most jobs are still to dial: a stopped reader needs a job that gets a later attempt.
            order.insert(0, self.stop_worker_before_dial)
        return order

    def check_workers(self) -> None:
        """Record every worker that exited by itself; it is not restarted (it must never happen)."""
        for name, proc in list(self.stack.processes.items()):
            if name.startswith("worker") and proc.poll() is not None:
                self.stack.processes.pop(name)
                self.worker_exits.append({"worker": name, "status": proc.returncode})
                print(f"chaos: {name} EXITED with status {proc.returncode}", file=sys.stderr)

    def flushall(self) -> str:
        redis.Redis.from_url(self.redis_server.url).flushall()
        return "FLUSHALL (no restart)"

    def restart_redis_repeatedly(self, times: int = 3) -> str:
        downs = [round(self.rng.uniform(0.0, 1.5), 2) for _ in range(times)]
        for down_s in downs:
            self.redis_server.restart(down_s)
            time.sleep(self.rng.uniform(1.0, 3.0))
            self.check_workers()
        return f"restart redis {times} times (down {downs} s), workers left running"

    def stop_worker_before_dial(self, tries: int = 4) -> str:
        """SIGSTOP a worker between its read of a job and ``queued -> dialing``, and SIGCONT it only
        once that job was queued again for a later attempt: its stale read must not dial. A job
        whose first attempt ends it (completed) gives no later attempt, so up to ``tries`` jobs."""
        done = []
        for _ in range(tries):
            what, raced = self._stop_one_worker_before_dial()
            done.append(what)
            if raced:
                break
        return "; ".join(done)

    def _stop_one_worker_before_dial(self, timeout_s: float = 60.0) -> tuple[str, bool]:
        from outdial.faults import Point
        from outdial.models import TERMINAL_STATES

        assert self.fault_dir is not None and self.database_url is not None
        self.fault_dir.mkdir(parents=True, exist_ok=True)
        stopped = self.fault_dir / f"{Point.BEFORE_BEGIN_DIAL}.stopped"
        stopped.unlink(missing_ok=True)
        (self.fault_dir / f"{Point.BEFORE_BEGIN_DIAL}.armed").touch()
        deadline = time.monotonic() + 30
        while not stopped.exists() or not stopped.read_text():
            if time.monotonic() > deadline:
                (self.fault_dir / f"{Point.BEFORE_BEGIN_DIAL}.armed").unlink(missing_ok=True)
                return "no worker reached the stop point", False
            time.sleep(0.05)
        pid, job_id = (int(v) for v in stopped.read_text().split())
        first = self._job(job_id)
        seen, raced = first, False
        deadline = time.monotonic() + timeout_s
        # Queued again with more attempts used than when it was read: the stale read's moment.
        while time.monotonic() < deadline:
            seen = self._job(job_id)
            if seen is not None and first is not None and seen[1] > first[1] and seen[0] == "queued":
                raced = True
                break
            if seen is not None and seen[0] in TERMINAL_STATES:
                break  # it ended without a later attempt: nothing left to race
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        return f"SIGSTOP worker pid {pid} before dialling job {job_id} {first} until {seen}, then SIGCONT", raced

    def _job(self, job_id: int) -> tuple[str, int] | None:
        from sqlalchemy import select

        from outdial.models import Job
        from outdial.store import table

        assert self.database_url is not None
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    select(table(Job).c.state, table(Job).c.attempts_used).where(table(Job).c.id == job_id)
                ).first()
        except Exception:  # the database may be restarting
            return None
        finally:
            engine.dispose()
        return (str(row.state), int(row.attempts_used)) if row is not None else None

    def kill_worker(self) -> str:
        name = self.rng.choice([n for n in self.stack.processes if n.startswith("worker")])
        self.stack.kill(name, signal.SIGKILL)
        self.stack.spawn("worker", name)
        return f"SIGKILL {name}"

    def kill_leader(self) -> str:
        token = redis.Redis.from_url(self.redis_server.url).get(LEADER_KEY)
        pid = int(token.decode().split(":")[1]) if token else None
        for name, proc in self.stack.processes.items():
            if name.startswith("scheduler") and proc.pid == pid:
                self.stack.kill(name, signal.SIGKILL)
                self.stack.spawn("scheduler", name)
                return f"SIGKILL leading {name}"
        return "no leader to kill"

    def restart_redis(self) -> str:
        self.redis_server.restart()
        return "restart redis"

    def restart_postgres(self) -> str:
        assert self.postgres is not None
        self.postgres.restart()
        return "restart postgresql"

    def run(self, count: int, every_s: float) -> None:
        for fault in self.plan(count):
            time.sleep(self.rng.uniform(0.5, 1.5) * every_s)
            started = time.monotonic()
            what = fault()
            self.log.append({"fault": what, "took_s": round(time.monotonic() - started, 2)})
            print(f"chaos: {what}", file=sys.stderr)
            self.check_workers()


def wait_until_settled(engine_url: str, timeout_s: float) -> None:
    from sqlalchemy import select

    from outdial.models import ACTIVE_STATES, Job
    from outdial.store import table

    engine = make_engine(engine_url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                active = conn.execute(
                    select(table(Job).c.id).where(table(Job).c.state.in_(list(ACTIVE_STATES))).limit(1)
                ).first()
            if active is None:
                break
        except Exception:  # the database may be restarting
            pass
        time.sleep(1)
    engine.dispose()


def run(quick: bool, seed: int, leads: int | None) -> dict[str, Any]:
    leads = leads or (400 if quick else 3000)
    fault_count, fault_every = (6, 5.0) if quick else (20, 10.0)
    workdir = Path(tempfile.mkdtemp(prefix="outdial-chaos-"))
    workdir.chmod(0o755)  # the private PostgreSQL runs as the postgres user and must reach its folder
    redis_server = PrivateRedis(free_port(REDIS_PORT), workdir / "redis")
    postgres = PrivatePostgres(free_port(PG_PORT), workdir / "pg") if PrivatePostgres.available() else None
    api_port, sim_port = free_port(API_PORT), free_port(SIM_PORT)
    accounts_file = workdir / "accounts.toml"
    names = chaos_accounts(accounts_file)
    started = time.monotonic()
    stack: Stack | None = None
    faults: Faults | None = None
    report: dict[str, Any] | None = None
    try:
        redis_server.start()
        if postgres is not None:
            postgres.start()
        database_url = (
            postgres.url
            if postgres is not None
            else os.environ.get("OUTDIAL_CHAOS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
        )
        os.environ.update(environment(workdir, accounts_file, database_url, redis_server.url, api_port, sim_port))
        reset_settings()
        stack = Stack(get_settings(), workdir / "logs", worker_args=["--pool", "threads", "--concurrency", "8"])
        faults = Faults(stack, redis_server, postgres, seed, workdir / "faults", database_url)
        stack.start()
        for extra in ("scheduler-2", "worker-2"):
            stack.spawn(extra.split("-")[0], extra)
        sim = f"http://127.0.0.1:{sim_port}"
        for provider in {a.provider for a in load_accounts(accounts_file).values()}:
            httpx.post(f"{sim}/_sim/config/{provider}", json={**FAULTS, "seed": seed})
        enqueue_leads(leads, names, seed)
        faults.run(fault_count, fault_every)
        wait_until_settled(database_url, timeout_s=90 if quick else 300)
        faults.check_workers()
        # Nothing may dial while the two sides are read, or they would not describe the same moment.
        for name in [n for n in stack.processes if n.startswith(("scheduler", "worker"))]:
            stack.kill(name, signal.SIGTERM)
        sim_stats = httpx.get(f"{sim}/_sim/stats", timeout=10).json()["providers"]
        if stack is not None:
            stack.stop()
        engine = make_engine(database_url)
        report = check(read_jobs(engine), sim_stats, load_accounts(accounts_file), get_settings())
        engine.dispose()
    finally:
        if stack is not None:
            stack.stop()
        redis_server.stop()
        if postgres is not None:
            postgres.stop()
        # The dispatch tasks' results are read from the logs before a clean run's folder goes.
        results = dispatch_results(workdir / "logs") if report is not None else None
        tidy(workdir, keep_logs=report is None or bool(broken(report)))
    assert report is not None and results is not None  # an exception above has left already
    report.update(
        {
            # What the dispatch tasks came to; paced:* are the gate's hand-backs.
            "dispatch_results": dict(results.most_common()),
            "hand_back_share": hand_back_share(results),
            "seed": seed,
            "leads": leads,
            "faults": faults.log if faults is not None else [],
            "worker_exits": len(faults.worker_exits) if faults is not None else 0,
            "worker_exit_detail": faults.worker_exits if faults is not None else [],
            "postgres_restarts": "private cluster" if postgres is not None else "skipped: no private cluster",
            "seconds": round(time.monotonic() - started, 1),
            "logs": str(workdir / "logs") if workdir.exists() else "removed (the run kept every promise)",
            "workdir": str(workdir),
        }
    )
    return report


INVARIANTS = (
    "jobs_not_terminal",
    "unexplained_request_mismatch",
    "calls_outside_window",
    "rate_over_limit",
    "concurrency_over_limit",
    "calls_over_budget",
    "worker_exits",
)


def broken(report: dict[str, Any]) -> list[str]:
    """The promises a report shows broken (empty: the run kept them all)."""
    over = ["max_requests_per_attempt"] if report["max_requests_per_attempt"] > 1 else []
    return over + [key for key in INVARIANTS if report.get(key)]


def tidy(workdir: Path, keep_logs: bool) -> None:
    """Remove the run's folder (its servers' data is tens of MB); a failed run keeps only its logs."""
    if not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for part in workdir.iterdir():
        if part.name != "logs":
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chaos", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run CI uses (under 3 minutes)")
    parser.add_argument("--seed", type=int, default=None, help="fixes the fault order and the injected faults")
    parser.add_argument(
        "--seeds", type=str, default=None, help="comma-separated seeds: one run each, a report for each"
    )
    parser.add_argument("--leads", type=int, default=None)
    args = parser.parse_args(argv)
    # Stopped from outside (a CI time limit): unwind, so every server the run started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.seeds:
        seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    else:
        seeds = [args.seed if args.seed is not None else random.randrange(1_000_000)]
    results = REPO_ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    failed: list[int] = []
    for seed in seeds:
        report = run(args.quick, seed, args.leads)
        found = broken(report)
        report["invariants_broken"] = found
        name = f"chaos{'-quick' if args.quick else ''}{f'-seed{seed}' if len(seeds) > 1 else ''}.json"
        (results / name).write_text(json.dumps(report, indent=2, default=str))
        print(json.dumps(report, default=str))
        print(f"chaos seed {seed}: {'every invariant holds' if not found else 'BROKEN: ' + ', '.join(found)}",
              file=sys.stderr)  # fmt: skip
        if found:
            failed.append(seed)
    if len(seeds) > 1:
        print(f"chaos: {len(seeds) - len(failed)} of {len(seeds)} seeds clean; failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
