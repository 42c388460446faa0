"""Flower on a real worker: a dispatch task is visible (name, job id) through its authenticated API,
carries no secret, and the worker's JSON log lines for it carry the job's ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery

from outdial.scheduler.loop import Scheduler
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.settings import Settings
from outdial.store.db import make_engine, upgrade
from outdial.worker.app import DISPATCH_TASK, celery_config
from tests.conftest import delete_redis_keys

FLOWER_PORT = 18310
CLOSED_PORT = 18349  # the "provider": nothing listens, so the dispatch is a quick connection refusal
AUTH = ("ops", f"pw-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "outdial", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(check: Any, timeout_s: float, what: str, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.3)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"{what} did not happen within {timeout_s} s\n{tails}")


@pytest.mark.slow
def test_flower_shows_the_dispatch_task_with_its_job_id_and_no_secret(
    tmp_path: Path, redis_url: str, processes: list[subprocess.Popen[bytes]], request: pytest.FixtureRequest
) -> None:
    api_key, webhook_secret = f"ck-key-{uuid.uuid4().hex}", f"ck-whsec-{uuid.uuid4().hex}"
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"""
[accounts.ck]
provider = "callkaro"
base_url = "http://127.0.0.1:{CLOSED_PORT}"
credentials = {{ api_key = "OUTDIAL_TEST_CK_KEY" }}
webhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET"
options = {{ agent_id = "sim-agent" }}
"""
    )
    db_url = f"sqlite:///{tmp_path / 'outdial.db'}"
    upgrade(db_url)
    tag = uuid.uuid4().hex[:12]
    queue = f"outdial.test.{tag}"
    keys = [queue, f"_kombu.binding*.{queue}", f"outdial:test:{tag}:*"]
    request.addfinalizer(lambda: delete_redis_keys(redis_url, keys))
    env = {
        **os.environ,
        "OUTDIAL_DATABASE_URL": db_url,
        "OUTDIAL_REDIS_URL": redis_url,
        "OUTDIAL_QUEUE": queue,
        "OUTDIAL_PACING_PREFIX": f"outdial:test:{tag}",
        "OUTDIAL_ACCOUNTS_FILE": str(accounts),
        "OUTDIAL_DATA_DIR": str(tmp_path / "var"),
        "OUTDIAL_LOG_FORMAT": "json",
        "OUTDIAL_TEST_CK_KEY": api_key,
        "OUTDIAL_TEST_WEBHOOK_SECRET": webhook_secret,
        # From the environment, not the command line: `ps` shows command lines to everyone.
        "OUTDIAL_FLOWER_BASIC_AUTH": ":".join(AUTH),
    }
    worker_log, flower_log = tmp_path / "worker.log", tmp_path / "flower.log"
    logs = [worker_log, flower_log]
    processes.append(spawn(["worker", "--pool", "threads", "--concurrency", "2"], env, worker_log))
    processes.append(spawn(["flower", "--host", "127.0.0.1", "--port", str(FLOWER_PORT)], env, flower_log))
    flower = f"http://127.0.0.1:{FLOWER_PORT}"

    wait_for(lambda: httpx.get(f"{flower}/api/tasks", timeout=2).status_code == 401, 60, "Flower answering", logs)
    wait_for(lambda: "ready." in worker_log.read_text(), 60, "the worker ready", logs)

    settings = Settings(
        database_url=db_url, redis_url=redis_url, queue=queue, accounts_file=accounts, callee_hours=None
    )
    engine = make_engine(db_url)
    job_id = enqueue_call(engine, CallBody(to_number="+12125551234", account="ck"), datetime.now(UTC), settings).job_id
    producer = Celery("test-producer", set_as_current=False)
    producer.conf.update(celery_config(settings))
    sent = Scheduler(engine, settings, lambda j: producer.send_task(DISPATCH_TASK, args=[j], queue=queue)).tick()
    assert sent.enqueued == [job_id]

    def finished_task() -> dict[str, Any] | None:
        tasks = httpx.get(f"{flower}/api/tasks", auth=AUTH, timeout=5).json()
        for task in tasks.values():
            if task.get("name") == DISPATCH_TASK and task.get("state") == "SUCCESS":
                return dict(task)
        return None

    task = wait_for(finished_task, 60, "the dispatch task succeeding in Flower", logs)
    assert task["args"] in (f"[{job_id}]", f"({job_id},)")
    assert task["kwargs"] == "{}"
    shown = httpx.get(f"{flower}/api/task/info/{task['uuid']}", auth=AUTH, timeout=5)
    assert shown.status_code == 200
    page = httpx.get(f"{flower}/task/{task['uuid']}", auth=AUTH, timeout=5).text
    for secret in (api_key, webhook_secret):
        assert secret not in json.dumps(task) and secret not in shown.text and secret not in page
    assert httpx.get(f"{flower}/api/task/info/{task['uuid']}", timeout=5).status_code == 401
    assert httpx.get(f"{flower}/api/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401

    # The worker logged JSON lines; the ones about this job carry its ids, none carries a secret.
    worker_text = worker_log.read_text()
    for secret in (api_key, webhook_secret, AUTH[1]):
        assert secret not in worker_text
    lines = [json.loads(ln) for ln in worker_text.splitlines() if ln.startswith("{")]
    about_task = [ln for ln in lines if task["uuid"] in ln["msg"] or ln.get("job_id") == job_id]
    messages = " | ".join(ln["msg"] for ln in about_task)
    assert "dialing" in messages and "dialed" in messages and "received" in messages and "succeeded" in messages
    for line in about_task:
        assert line.get("job_id") == job_id, line
    for line in about_task:
        if line["msg"] in ("dialing", "dialed"):
            assert line["account"] == "ck" and line["attempt"] == 1 and "attempt_id" in line
    assert AUTH[1] not in flower_log.read_text()
