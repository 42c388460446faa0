"""The real stack (simulator, API, scheduler, Celery worker) on PostgreSQL and Redis, with workers
killed by SIGKILL while calls are in flight: no job is lost, nobody is dialled twice."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from outdial.models import ACTIVE_STATES, Attempt, Job
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.settings import get_settings, reset_settings
from outdial.stack import Stack
from outdial.store import table
from outdial.store.db import make_engine
from tests.conftest import _empty, delete_redis_keys, redis_keys_of

API_PORT, SIM_PORT = 18410, 18411
JOBS = 40


@pytest.fixture
def restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    reset_settings()


@pytest.mark.slow
def test_killed_workers_lose_no_job_and_dial_nobody_twice(
    pg_url: str, redis_url: str, tmp_path: Path, restore_environ: None
) -> None:
    tag = uuid.uuid4().hex[:12]
    os.environ.update(
        {
            "OUTDIAL_DATABASE_URL": pg_url,
            "OUTDIAL_REDIS_URL": redis_url,
            "OUTDIAL_QUEUE": f"outdial.test.{tag}",
            "OUTDIAL_PACING_PREFIX": f"outdial:test:{tag}",
            "OUTDIAL_DATA_DIR": str(tmp_path / "var"),
            "OUTDIAL_API_PORT": str(API_PORT),
            "OUTDIAL_SIMULATOR_PORT": str(SIM_PORT),
            "OUTDIAL_PUBLIC_URL": f"http://127.0.0.1:{API_PORT}",
            "OUTDIAL_SIMULATOR_URL": f"http://127.0.0.1:{SIM_PORT}",
            # Short leases, so the test sees lost messages and dead workers handled in seconds.
            "OUTDIAL_QUEUED_LEASE_S": "3",
            "OUTDIAL_DIALING_LEASE_S": "4",
            "OUTDIAL_SCHEDULER_INTERVAL_S": "0.2",
        }
    )
    reset_settings()
    engine = make_engine(pg_url)
    _empty(engine)
    stack = Stack(get_settings(), tmp_path / "logs", worker_args=["--pool", "prefork", "--concurrency", "2"])
    try:
        stack.start()
        sim = f"http://127.0.0.1:{SIM_PORT}"
        httpx.post(f"{sim}/_sim/reset")
        httpx.post(f"{sim}/_sim/config/callkaro", json={"latency_ms": 150, "outcome_delay_s": 0.5})
        now = datetime.now(UTC)
        numbers = [f"+1212555{1000 + i:04d}" for i in range(JOBS)]
        for number in numbers:
            body = CallBody(to_number=number, account="sim-callkaro", callee_hours=None)
            enqueue_call(engine, body, now, get_settings())

        for _ in range(3):  # kill the worker mid-flight, again and again
            time.sleep(1.0)
            stack.kill("worker", signal.SIGKILL)
            stack.spawn("worker")

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                states = Counter(s for (s,) in conn.execute(select(table(Job).c.state)))
            if not any(state in ACTIVE_STATES for state in states):
                break
            time.sleep(0.5)
        stats = httpx.get(f"{sim}/_sim/stats").json()["providers"]["callkaro"]
    finally:
        stack.stop()
        delete_redis_keys(redis_url, redis_keys_of(get_settings()))

    print("states:", dict(states), "simulator:", stats["requests"], "requests")
    assert sum(states.values()) == JOBS
    assert not any(state in ACTIVE_STATES for state in states), f"jobs left in flight: {states}"
    assert set(states) <= {"completed", "unknown"}, states
    assert states["completed"] > 0

    # From the provider's side: one call per job at most (no retries were allowed).
    accepted = Counter(stats["accepted_by_number"])
    assert max(accepted.values()) == 1
    with engine.connect() as conn:
        jobs = table(Job)
        attempts = table(Attempt)
        unknown = {n for (n,) in conn.execute(select(jobs.c.to_number).where(jobs.c.state == "unknown"))}
        recorded = Counter(
            n
            for (n,) in conn.execute(
                select(jobs.c.to_number)
                .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
                .where(attempts.c.result == "accepted")
            )
        )
    # Every call the provider took is recorded, except where the job says the outcome is unknown.
    unexplained = {n for n in accepted if accepted[n] != recorded[n] and n not in unknown}
    assert unexplained == set()
    engine.dispose()
