"""The performance benchmark's world: private Redis and PostgreSQL, the simulator, workers, a scheduler.

Everything runs on private servers and ports, so the numbers are not shared
with (and do not disturb) anything else on the machine. Jobs are written
straight into PostgreSQL with ``INSERT ... SELECT generate_series`` copies of
one template job made by the real intake (``enqueue_call``), so they are rows
the engine itself would have written.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from sqlalchemy import Engine, text

from bench import REPO_ROOT
from bench.services import PrivatePostgres, PrivateRedis, wait_port
from outdial.settings import Settings, get_settings, reset_settings
from outdial.stack import fill_demo_credentials
from outdial.store.db import make_engine, upgrade

# Private ports, the first free one of each range: two runs at once (CI and a person) do not collide.
REDIS_PORTS, PG_PORTS, SIM_PORTS = range(6491, 6500), range(5491, 5498), range(18511, 18560)
API_PORT = 18510  # never listened on: outcomes are not delivered during a run


def free_port(candidates: range) -> int:
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")


QUEUE = "outdial.perf"
ACCOUNT = "sim-callkaro"

# The sim-* accounts, without pacing limits: the benchmark measures the engine, not a limit.
ACCOUNTS_TOML = """
[accounts.sim-callkaro]
provider = "callkaro"
base_url = "${OUTDIAL_SIMULATOR_URL}"
credentials = { api_key = "OUTDIAL_SIM_CALLKARO_API_KEY" }
webhook_secret = "OUTDIAL_SIM_WEBHOOK_SECRET"
options = { agent_id = "sim-agent" }

# The same provider with pacing limits configured, loose enough never to bind at these rates (and
# calls in flight are never ended here): each call pays the pacer's checks, not its waits.
[accounts.sim-callkaro-paced]
provider = "callkaro"
base_url = "${OUTDIAL_SIMULATOR_URL}"
credentials = { api_key = "OUTDIAL_SIM_CALLKARO_API_KEY" }
webhook_secret = "OUTDIAL_SIM_WEBHOOK_SECRET"
options = { agent_id = "sim-agent" }
limits = { calls_per_second = 5000, max_concurrent = 1000000 }
"""
PACED_ACCOUNT = "sim-callkaro-paced"


def rss_tree(pid: int) -> int:
    """Resident memory of a process and all its children, in bytes."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


@dataclass
class PerfEnv:
    pool: str
    concurrency: int
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="outdial-perf-")))
    redis_server: PrivateRedis | None = None
    postgres: PrivatePostgres | None = None
    database_url: str = ""
    engine: Engine | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    template_id: int = 0
    paced_template_id: int = 0
    saved_env: dict[str, str | None] = field(default_factory=dict)
    sim_port: int = 0

    # --- servers ----------------------------------------------------------------------

    def start(self) -> None:
        self.workdir.chmod(0o755)  # the private PostgreSQL runs as the postgres user
        self.redis_server = PrivateRedis(free_port(REDIS_PORTS), self.workdir / "redis")
        self.redis_server.start()
        self.sim_port = free_port(SIM_PORTS)
        if PrivatePostgres.available():
            self.postgres = PrivatePostgres(free_port(PG_PORTS), self.workdir / "pg")
            self.postgres.start()
            self.database_url = self.postgres.url
        else:  # pragma: no cover - machines without server binaries
            self.database_url = self._fresh_shared_database()
        accounts = self.workdir / "accounts.toml"
        accounts.write_text(ACCOUNTS_TOML)
        env = {
            "OUTDIAL_DATABASE_URL": self.database_url,
            "OUTDIAL_REDIS_URL": self.redis_server.url,
            "OUTDIAL_ACCOUNTS_FILE": str(accounts),
            "OUTDIAL_DATA_DIR": str(self.workdir / "var"),
            "OUTDIAL_QUEUE": QUEUE,
            "OUTDIAL_API_PORT": str(API_PORT),
            "OUTDIAL_SIMULATOR_PORT": str(self.sim_port),
            "OUTDIAL_PUBLIC_URL": f"http://127.0.0.1:{API_PORT}",
            "OUTDIAL_SIMULATOR_URL": f"http://127.0.0.1:{self.sim_port}",
            # Outcomes (webhooks, polls) are not what is measured here; keep them out of the run.
            "OUTDIAL_POLL_AFTER_S": "86400",
            "OUTDIAL_BREAKER_MIN_CALLS": "100000000",
            "OUTDIAL_LOG_FORMAT": "json",
        }
        for key, value in env.items():
            self.saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        reset_settings()
        fill_demo_credentials(get_settings())
        upgrade(self.database_url)
        self.engine = make_engine(self.database_url, pool_size=2)
        self.template_id = self._template_job(ACCOUNT)
        self.paced_template_id = self._template_job(PACED_ACCOUNT)
        self.spawn("simulator", [sys.executable, "-m", "outdial", "simulator"])
        wait_port(self.sim_port, 60)
        self.configure_sim(latency_ms=0)

    def _fresh_shared_database(self) -> str:
        name = f"outdial_perf_{os.getpid()}"
        admin = make_engine("postgresql://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name)
        # Each part stops even when another failed to (or never started).
        for stop in (
            self.engine.dispose if self.engine is not None else None,
            self.redis_server.stop if self.redis_server is not None else None,
            self.postgres.stop if self.postgres is not None else None,
        ):
            if stop is not None:
                with contextlib.suppress(Exception):
                    stop()
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()

    @property
    def settings(self) -> Settings:
        return get_settings()

    @property
    def db(self) -> Engine:
        assert self.engine is not None
        return self.engine

    def redis(self) -> redis.Redis:
        assert self.redis_server is not None
        return redis.Redis.from_url(self.redis_server.url)

    # --- processes --------------------------------------------------------------------

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self.processes[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()

    def start_worker(self, name: str, queue: str = QUEUE) -> subprocess.Popen[bytes]:
        """What ``outdial worker --pool P --concurrency C`` runs, with the no-op task registered too."""
        args = [sys.executable, "-m", "celery", "-A", "bench.perf_app", "worker", "-E",
                f"--pool={self.pool}", f"--concurrency={self.concurrency}", "--loglevel=INFO",
                "-Q", queue, "-n", f"{name}@%h"]  # fmt: skip
        proc = self.spawn(name, args)
        self.wait_worker(queue)
        return proc

    def wait_worker(self, queue: str, timeout_s: float = 60) -> None:
        from bench.perf_app import NOOP_TASK, app

        key = f"perf:ready:{queue}:{time.monotonic()}"
        app.send_task(NOOP_TASK, args=[key], queue=queue)
        deadline = time.monotonic() + timeout_s
        while not self.redis().llen(key):
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker on {queue} did not start; logs in {self.workdir / 'logs'}")
            time.sleep(0.1)

    def start_scheduler(self) -> None:
        self.spawn("scheduler", [sys.executable, "-m", "outdial", "scheduler"])

    def configure_sim(self, **changes: Any) -> None:
        # No webhooks during a run: outcomes are not what is measured, and the API is not running.
        body = {"outcome_delay_s": 86400.0, **changes}
        httpx.post(f"http://127.0.0.1:{self.sim_port}/_sim/config/callkaro", json=body, timeout=10).raise_for_status()

    # --- jobs -------------------------------------------------------------------------

    def _template_job(self, account: str) -> int:
        from outdial.services.intake.enqueue import CallBody, enqueue_call

        body = CallBody(to_number="+12125550100", account=account, metadata={"name": "perf"}, callee_hours=None)
        job = enqueue_call(self.db, body, datetime.now(UTC), self.settings)
        with self.db.begin() as conn:
            # The template itself is never dialled.
            conn.execute(text("UPDATE jobs SET state = 'cancelled' WHERE id = :id"), {"id": job.job_id})
        return job.job_id

    def insert_jobs(
        self,
        count: int,
        first_due: datetime,
        per_second: float | None = None,
        state: str = "scheduled",
        paced: bool = False,
    ) -> tuple[int, int]:
        """``count`` copies of the template in ``state`` (scheduled: for the scheduler; queued: handed
        straight to a task), due from ``first_due`` (spread at ``per_second``); their id range.
        With ``paced``, of the template on the account with pacing limits."""
        template = self.paced_template_id if paced else self.template_id
        step_us = 0 if not per_second else 1_000_000 / per_second
        with self.db.begin() as conn:
            rows = conn.execute(
                text(
                    """
                    INSERT INTO jobs (campaign_id, lead_id, round, account, to_number, variables, options, timing,
                                      retry_on, state, priority, next_due_at, window_end, state_changed_at,
                                      attempts_used, transport_retries, created_at)
                    SELECT t.campaign_id, t.lead_id, t.round, t.account,
                           '+1212' || (2000000 + g % 7000000)::text, t.variables, t.options, t.timing,
                           t.retry_on, :state, t.priority,
                           CAST(:due AS timestamptz) + make_interval(secs => (g * CAST(:step AS float8)) / 1e6),
                           t.window_end, now(), 0, 0, now()
                    FROM jobs t, generate_series(0, :n - 1) AS g
                    WHERE t.id = :template
                    RETURNING id
                    """
                ),
                {"due": first_due, "step": step_us, "n": count, "template": template, "state": state},
            ).all()
        ids = [int(r[0]) for r in rows]
        return min(ids), max(ids)

    def insert_backlog(self, count: int, due: datetime) -> None:
        """``count`` jobs scheduled at or after ``due`` (far in the future), fast, then ANALYZE."""
        chunk = 250_000
        for start in range(0, count, chunk):
            with self.db.begin() as conn:
                conn.execute(
                    text(
                        """
                        INSERT INTO jobs (campaign_id, lead_id, round, account, to_number, variables, options,
                                          timing, retry_on, state, priority, next_due_at, window_end,
                                          state_changed_at, attempts_used, transport_retries, created_at)
                        SELECT t.campaign_id, t.lead_id, t.round, t.account,
                               '+1212' || (2000000 + g % 7000000)::text, t.variables, t.options, t.timing,
                               t.retry_on, 'scheduled', t.priority,
                               CAST(:due AS timestamptz) + make_interval(secs => g),
                               t.window_end, now(), 0, 0, now()
                        FROM jobs t, generate_series(:a, :b) AS g
                        WHERE t.id = :template
                        """
                    ),
                    {"due": due, "a": start, "b": min(count, start + chunk) - 1, "template": self.template_id},
                )
        with self.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))

    def wait_attempts(self, lo: int, hi: int, timeout_s: float) -> dict[str, Any]:
        """Wait until every job in ``[lo, hi]`` has an attempt (or the time-out); their span and lateness."""
        expected = hi - lo + 1
        deadline = time.monotonic() + timeout_s
        done = 0
        while time.monotonic() < deadline:
            with self.db.connect() as conn:
                done = int(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM attempts WHERE job_id BETWEEN :lo AND :hi AND http_status IS NOT NULL"
                        ),
                        {"lo": lo, "hi": hi},
                    ).scalar_one()
                )
            if done >= expected:
                break
            time.sleep(0.2)
        with self.db.connect() as conn:
            row = conn.execute(
                text(
                    """
                    SELECT count(*), min(requested_at), max(requested_at), max(responded_at),
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM requested_at - due_at)),
                           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM requested_at - due_at)),
                           max(extract(epoch FROM requested_at - due_at)),
                           count(*) FILTER (WHERE result = 'accepted')
                    FROM attempts WHERE job_id BETWEEN :lo AND :hi
                    """
                ),
                {"lo": lo, "hi": hi},
            ).one()
        count, first, last_req, last_resp, p50, p99, worst, accepted = row
        span = (last_req - first).total_seconds() if count > 1 else 0.0
        return {
            "expected": expected,
            "attempts": int(count),
            "accepted": int(accepted),
            "complete": int(count) >= expected,
            "span_s": span,
            "rate_per_s": (count - 1) / span if span > 0 else 0.0,
            "lateness_p50_s": float(p50) if p50 is not None else None,
            "lateness_p99_s": float(p99) if p99 is not None else None,
            "lateness_max_s": float(worst) if worst is not None else None,
            "last_response": last_resp,
        }

    def noop_run(self, count: int, queue: str = QUEUE) -> dict[str, Any]:
        """Send ``count`` no-op tasks as fast as one process can, and time their execution."""
        from bench.perf_app import NOOP_TASK, app

        key = f"perf:noop:{time.monotonic()}"
        client = self.redis()
        for _ in range(count):
            app.send_task(NOOP_TASK, args=[key], queue=queue)
        deadline = time.monotonic() + 300
        while client.llen(key) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        times = sorted(float(t) for t in client.lrange(key, 0, -1))
        client.delete(key)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return {"tasks": len(times), "span_s": span, "rate_per_s": (len(times) - 1) / span if span > 0 else 0.0}

    def ideal_run(self, count: int, queue: str = QUEUE) -> dict[str, Any]:
        """``count`` queued jobs, each sent as a ``bench.ideal`` task (as fast as one process can, like
        the no-op), timed like the dispatch: first to last attempt's request."""
        from bench.perf_app import IDEAL_TASK, app

        lo, hi = self.insert_jobs(count, now_utc() - timedelta(seconds=1), state="queued")
        for job_id in range(lo, hi + 1):
            app.send_task(IDEAL_TASK, args=[job_id], queue=queue)
        result = self.wait_attempts(lo, hi, timeout_s=max(60.0, count / 5))
        self.clear_jobs(lo, hi)
        return result

    def clear_jobs(self, lo: int, hi: int) -> None:
        with self.db.begin() as conn:
            conn.execute(
                text("UPDATE jobs SET state = 'completed' WHERE id BETWEEN :lo AND :hi AND state <> 'completed'"),
                {"lo": lo, "hi": hi},
            )


def now_utc() -> datetime:
    return datetime.now(UTC)


def later(seconds: float) -> datetime:
    return now_utc() + timedelta(seconds=seconds)


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
