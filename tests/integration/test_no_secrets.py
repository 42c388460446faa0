"""A campaign end to end with known secret values configured; none of them may appear in the logs,
the broker's messages, or the database (attempts, jobs, provider events, everything else).

Real HTTP throughout: the CallKaro simulator and outdial's API run in this process on loopback
(uvicorn in threads), the scheduler sends real Celery messages to the real Redis, the messages are
read back raw from the broker and dispatched, and the simulator posts its webhooks to the API.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from celery import Celery
from sqlalchemy import Engine, select

from outdial.api.app import create_app
from outdial.logs import ContextFilter, JsonFormatter
from outdial.models import TERMINAL_STATES, Base
from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.dispatch import Dispatched, Dispatcher, Step
from outdial.services.providers.accounts import load_accounts
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.simulator.app import create_app as create_simulator
from outdial.store import campaigns as campaign_store
from outdial.worker.app import DISPATCH_TASK, celery_config

API_PORT, SIM_PORT = 18301, 18302
LEADS = 6


class Server:
    """A uvicorn server in a thread, for as long as the test needs it."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every log line, formatted as production writes it (JSON, bound ids included)."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def broker_messages(client: redis.Redis, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
    """The raw messages waiting in the queue, and each one's decoded body."""
    found = []
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        decoded = base64.b64decode(body) if envelope["properties"].get("body_encoding") == "base64" else body
        found.append((raw, {"envelope": envelope, "body": json.loads(decoded)}))
    return found


def everything_in_the_database(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(
            repr(row) for table in Base.metadata.sorted_tables for row in conn.execute(select(table)).all()
        )


def test_no_configured_secret_is_written_anywhere(
    engine: Engine,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: list[str],
) -> None:
    api_key = f"ck-live-{uuid.uuid4().hex}"
    webhook_secret = f"whsec-{uuid.uuid4().hex}"
    secrets = (api_key, webhook_secret)
    monkeypatch.setenv("OUTDIAL_TEST_CK_KEY", api_key)
    monkeypatch.setenv("OUTDIAL_TEST_WEBHOOK_SECRET", webhook_secret)
    monkeypatch.setattr("outdial.simulator.callkaro.DEMO_KEY", api_key)  # the simulator accepts only this key
    accounts_file = tmp_path / "accounts.toml"
    accounts_file.write_text(
        f"""
[accounts.ck]
provider = "callkaro"
base_url = "http://127.0.0.1:{SIM_PORT}"
credentials = {{ api_key = "OUTDIAL_TEST_CK_KEY" }}
webhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET"
options = {{ agent_id = "sim-agent" }}
"""
    )
    settings = Settings(
        data_dir=tmp_path / "var",
        accounts_file=accounts_file,
        redis_url=redis_url,
        queue=f"outdial.test.{uuid.uuid4().hex[:8]}",
        public_url=f"http://127.0.0.1:{API_PORT}",
        callee_hours=None,
    )
    accounts = load_accounts(accounts_file)
    sim_config = {
        "callkaro": {
            "webhook_secret": webhook_secret,
            "webhook_url": f"http://127.0.0.1:{API_PORT}/webhooks/ck",
            "outcome_delay_s": 0.1,
            "outcome_mix": {"completed": 0.5, "no_answer": 0.5},
            "seed": 7,
        }
    }
    now = datetime.now(UTC)
    campaign_id = create_campaign(engine, settings, "secrets", "ck", TimingFields(number_of_retries=0), now)
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    leads = [LeadIn(phone=f"+1212555{1000 + i:04d}", variables={"name": f"lead {i}"}) for i in range(LEADS)]
    assert add_leads(engine, settings, campaign, leads, now).accepted == LEADS

    producer = Celery("test-producer", set_as_current=False)
    producer.conf.update(celery_config(settings))
    broker = redis.Redis.from_url(redis_url)
    dispatcher = Dispatcher(engine, settings, accounts, httpx.Client(timeout=10))
    with Server(create_simulator(sim_config), SIM_PORT), Server(create_app(settings, engine, accounts), API_PORT):
        try:
            sent = Scheduler(engine, settings, lambda j: producer.send_task(DISPATCH_TASK, args=[j])).tick()
            assert len(sent.enqueued) == LEADS
            messages = broker_messages(broker, settings.queue)
        finally:
            broker.delete(settings.queue)
        assert len(messages) == LEADS
        for raw, message in messages:
            assert message["envelope"]["headers"]["task"] == DISPATCH_TASK
            (job_id,) = message["body"][0]  # the job id, and nothing else
            assert message["body"][1] == {}
            assert dispatcher.dispatch(job_id) == Dispatched(Step.ACCEPTED)
            for secret in secrets:
                assert secret.encode() not in raw

        deadline = time.monotonic() + 30
        while True:
            # A short read each time: on SQLite an open transaction would hold the API's webhooks back.
            with engine.connect() as conn:
                states = [r.state for r in conn.execute(select(Base.metadata.tables["jobs"])).all()]
            if all(s in TERMINAL_STATES for s in states) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert set(states) <= {"completed", "exhausted"} and len(states) == LEADS, states

    stored = everything_in_the_database(engine)
    log_text = "\n".join(captured_logs)
    assert "dialing" in log_text and "call_ended" in stored  # the flow really ran and was recorded
    for secret in secrets:
        assert secret not in stored
        assert secret not in log_text
    dialing = [json.loads(line) for line in captured_logs if '"msg": "dialing"' in line]
    assert len(dialing) == LEADS
    for line in dialing:
        assert line["campaign_id"] == campaign_id and line["account"] == "ck" and "attempt_id" in line
