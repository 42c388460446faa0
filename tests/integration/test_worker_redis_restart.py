"""A worker with late acks survives Redis restarts while it holds unacked messages, and consumes after.

kombu 5.7 stopped such a worker with "Unrecoverable error: AttributeError('NoneType' object has
no attribute 'hostname')" (see outdial.worker.transport); the worker command then exited 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from bench.services import PrivateRedis, free_port
from outdial.settings import Settings
from outdial.worker.app import celery_config
from tests.integration.slow_task import SLOW_TASK

# Down for no time up to longer than redis-py's own retries: the crash came when Redis was back
# between Celery's two closes of the lost connection.
DOWN_S = [0.0, 0.1, 0.3, 0.6, 0.0, 0.2, 1.0, 0.05]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port(6481), tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_worker_survives_redis_restarts_and_consumes_after(private_redis: PrivateRedis, tmp_path: Path) -> None:
    queue = f"outdial.test.{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OUTDIAL_REDIS_URL": private_redis.url,
        "OUTDIAL_QUEUE": queue,
        "OUTDIAL_DATA_DIR": str(tmp_path / "var"),
    }
    marks, log = tmp_path / "marks.txt", tmp_path / "worker.log"
    marks.touch()
    client = Celery("client")
    client.conf.update(celery_config(Settings(redis_url=private_redis.url, queue=queue)))
    args = [sys.executable, "-m", "celery", "-A", "outdial.worker.app:app", "worker",
            "-I", "tests.integration.slow_task", "-Q", queue,
            "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO"]  # fmt: skip
    with log.open("ab") as out:
        worker = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    try:
        wait_for(lambda: b"ready." in log.read_bytes(), 30, "the worker to start")
        for restart, down_s in enumerate(DOWN_S):
            for i in range(40):  # far more than 4 threads run at once: most wait unacked in the worker
                client.send_task(SLOW_TASK, args=[0.3, str(marks), f"r{restart}-{i}"], queue=queue)
            assert "Unrecoverable error" not in log.read_text(), f"worker stopped after restart {restart}"
            wait_for(lambda r=restart: f"r{r}-" in marks.read_text(), 30, "tasks to run")
            private_redis.restart(down_s)
            time.sleep(0.5)
            assert worker.poll() is None, f"worker exited with {worker.returncode} after restart {restart + 1}"
        # Still consuming: a task sent after the last restart runs.
        client.send_task(SLOW_TASK, args=[0, str(marks), "after"], queue=queue)
        wait_for(lambda: "after" in marks.read_text().split(), 60, "a task sent after the restarts")
        assert worker.poll() is None
        text = log.read_text()
        assert "Unrecoverable error" not in text
        assert text.count("Restoring") >= 1  # the path that crashed was taken, and survived
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        client.close()
