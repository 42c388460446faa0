"""Flower on a real worker: a dispatch task is visible through its authenticated API with its campaign,
account, attempt and masked number; a provider's 500 (the call went ``unknown``) shows as FAILURE
with the reason; an ``enqueue_call`` shows no full number and no lead variables; nothing carries a
secret, and the worker's JSON log lines for the dispatch carry the job's ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery

from outdial.scheduler.loop import Scheduler
from outdial.scheduler.process import celery_sender
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.store.db import make_engine, upgrade
from outdial.worker.app import DISPATCH_TASK, celery_config
from outdial.worker.intake_tasks import ENQUEUE_TASK, IMPORT_TASK
from tests.conftest import delete_redis_keys

FLOWER_PORT = 18310
AUTH = ("ops", f"pw-{uuid.uuid4().hex[:8]}")
NUMBER, LEAD_SECRET = "+12125551234", "lead-variable-that-must-not-show"


class _Failing(BaseHTTPRequestHandler):
    """The "provider": every create-call request gets a 500, so the call's outcome is unknown."""

    def do_POST(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        # Like many a provider, it quotes the number it was given in its error.
        body = json.dumps({"error": f"internal error calling {sent.get('customer_number', '?')}"}).encode()
        self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


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
def test_flower_shows_calls_readably_a_500_as_failure_and_no_number_or_secret(
    tmp_path: Path,
    redis_url: str,
    processes: list[subprocess.Popen[bytes]],
    failing_provider: str,
    request: pytest.FixtureRequest,
) -> None:
    api_key, webhook_secret = f"ck-key-{uuid.uuid4().hex}", f"ck-whsec-{uuid.uuid4().hex}"
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"""
[accounts.ck]
provider = "callkaro"
base_url = "{failing_provider}"
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
    now = datetime.now(UTC)
    campaign_id = create_campaign(engine, settings, "spring", "ck", TimingFields(callee_hours=None), now)
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    add_leads(engine, settings, campaign, [LeadIn(NUMBER, {"secret": LEAD_SECRET})], now)
    producer = Celery("test-producer", set_as_current=False)
    producer.conf.update(celery_config(settings))
    # The scheduler's own sender: it sets the readable argsrepr.
    sent = Scheduler(engine, settings, celery_sender(settings, producer)).tick()
    (job_id,) = sent.enqueued
    # A service sending enqueue_call without a kwargsrepr of its own: the worker masks what Flower shows.
    enqueue = {"to_number": "+13125559876", "account": "ck", "metadata": {"secret": LEAD_SECRET}}
    producer.send_task(ENQUEUE_TASK, kwargs=enqueue, queue=queue)
    # A lead list sent inline: Flower shows its size, not its rows.
    lines = f"phone,secret\n+13125550001,{LEAD_SECRET}\n"
    producer.send_task(IMPORT_TASK, kwargs={"campaign": "spring", "csv": lines}, queue=queue)

    def finished(name: str, state: str) -> Any:
        def check() -> dict[str, Any] | None:
            tasks = httpx.get(f"{flower}/api/tasks", auth=AUTH, timeout=5).json()
            for task in tasks.values():
                if task.get("name") == name and task.get("state") == state:
                    return dict(task)
            return None

        return check

    task = wait_for(finished(DISPATCH_TASK, "FAILURE"), 60, "the dispatch task failing in Flower", logs)
    assert task["args"] == f"job={job_id} campaign=spring account=ck attempt=1 to=…1234"
    assert task["kwargs"] == "{}"
    assert "CallNotPlaced" in task["exception"] and "500" in task["exception"], task["exception"]
    assert task.get("retries", 0) == 0
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == "unknown"  # recorded before the task failed
    received = wait_for(finished(ENQUEUE_TASK, "SUCCESS"), 60, "the enqueue task in Flower", logs)
    assert received["kwargs"].startswith("to=…9876 account=ck"), received["kwargs"]
    assert "metadata" in received["kwargs"]
    shown_enqueue = json.dumps(received)
    assert "5559876" not in shown_enqueue and LEAD_SECRET not in shown_enqueue
    imported = wait_for(finished(IMPORT_TASK, "SUCCESS"), 60, "the import task in Flower", logs)
    assert imported["kwargs"] == f"campaign=spring csv=<{len(lines)} bytes>", imported["kwargs"]
    assert LEAD_SECRET not in json.dumps(imported) and "5550001" not in json.dumps(imported)
    shown = httpx.get(f"{flower}/api/task/info/{task['uuid']}", auth=AUTH, timeout=5)
    assert shown.status_code == 200
    page = httpx.get(f"{flower}/task/{task['uuid']}", auth=AUTH, timeout=5).text
    for secret in (api_key, webhook_secret, "5551234"):
        assert secret not in json.dumps(task) and secret not in shown.text and secret not in page
    assert httpx.get(f"{flower}/api/task/info/{task['uuid']}", timeout=5).status_code == 401
    assert httpx.get(f"{flower}/api/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401

    # The worker logged JSON lines; the ones about this job carry its ids, none carries a secret.
    worker_text = worker_log.read_text()
    for secret in (api_key, webhook_secret, AUTH[1], LEAD_SECRET):
        assert secret not in worker_text
    lines = [json.loads(ln) for ln in worker_text.splitlines() if ln.startswith("{")]
    about_task = [ln for ln in lines if task["uuid"] in ln["msg"] or ln.get("job_id") == job_id]
    messages = " | ".join(ln["msg"] for ln in about_task)
    assert "dialing" in messages and "dialed" in messages and "received" in messages and "CallNotPlaced" in messages
    for line in about_task:
        assert line.get("job_id") == job_id, line
    for line in about_task:
        if line["msg"] in ("dialing", "dialed"):
            assert line["account"] == "ck" and line["attempt"] == 1 and "attempt_id" in line
    assert AUTH[1] not in flower_log.read_text()
