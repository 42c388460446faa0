"""Fixtures for tests that need a real Celery worker, or keys of their own, on the real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis
import respx
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import Engine

from outdial.settings import Settings, reset_settings
from tests.conftest import delete_redis_keys, redis_keys_of

CALLKARO_URL = "http://callkaro.test/call/outbound"  # the test account ck's (tests/accounts.toml)


@pytest.fixture
def worker(
    engine: Engine, settings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., None]]:
    """A worker on this test's queue and database; yields ``send(task, **kwargs)``."""
    env = {
        "OUTDIAL_REDIS_URL": redis_url,
        "OUTDIAL_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "OUTDIAL_QUEUE": settings.queue,
        "OUTDIAL_ACCOUNTS_FILE": str(settings.accounts_file),
        "OUTDIAL_DATA_DIR": str(settings.data_dir),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    from outdial.worker.app import app

    # Explicit too: another test in this process may have read the app's configuration first.
    app.conf.update(broker_url=redis_url, task_default_queue=settings.queue)
    caller = Celery(broker=redis_url)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=[settings.queue], shutdown_timeout=30):

        def send(task: str, **kwargs: Any) -> None:
            caller.send_task(task, kwargs=kwargs, queue=settings.queue)

        yield send
    caller.close()
    # Kombu keeps each queue's bindings without a TTL: this test's queue is gone with it.
    delete_redis_keys(redis_url, redis_keys_of(settings))


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the worker")
        time.sleep(0.1)


@pytest.fixture
def pacing_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own (the Redis is shared), cleaned up afterwards."""
    name = f"outdial:test:pacing:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)


def accepted_call(engine: Engine, settings: Settings, now: datetime, call_id: str = "c1", **fields: Any) -> int:
    """A job of the test CallKaro account ``ck`` (to +12125551234, New York time unless ``fields``
    say otherwise), claimed and dispatched at ``now``, whose call ``call_id`` the provider accepted."""
    from outdial.scheduler.loop import Scheduler
    from outdial.services.dispatch import Dispatcher
    from outdial.services.intake.enqueue import CallBody, enqueue_call
    from outdial.services.providers.accounts import load_accounts

    body = CallBody.model_validate(
        {"to_number": "+12125551234", "account": "ck", "timezone": "America/New_York", **fields}
    )
    job_id = enqueue_call(engine, body, now, settings).job_id
    Scheduler(engine, settings, lambda _: None).tick(now)
    with respx.mock:
        respx.post(CALLKARO_URL).mock(return_value=httpx.Response(200, json={"call_sid": call_id}))
        dispatcher = Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client())
        assert str(dispatcher.dispatch(job_id, now)) == "accepted"
    return job_id
