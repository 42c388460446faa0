"""``outdial up``'s stack serves the workers' counters on the API's ``/metrics`` with no setting:
the stack gives every part one Prometheus multiprocess directory under the data dir."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.services import free_port
from outdial.metrics import MULTIPROC_ENV
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.settings import get_settings, reset_settings
from outdial.stack import Stack
from outdial.store.db import make_engine

ACCEPTED = ("outdial_attempts_total", (("provider", "callkaro"), ("result", "accepted")))


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
def test_the_stack_serves_worker_counters_on_metrics(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_port, sim_port = free_port(18460), free_port(18461)
    # Stack.start writes these to os.environ for its children; monkeypatch puts them back after.
    for name, value in {
        "OUTDIAL_DATA_DIR": str(tmp_path / "var"),
        "OUTDIAL_REDIS_URL": redis_url,
        "OUTDIAL_QUEUE": f"outdial.test.{uuid.uuid4().hex[:8]}",
        "OUTDIAL_API_PORT": str(api_port),
        "OUTDIAL_SIMULATOR_PORT": str(sim_port),
        "OUTDIAL_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "OUTDIAL_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}",
        "OUTDIAL_DATABASE_URL": f"sqlite:///{tmp_path / 'outdial.db'}",
        "OUTDIAL_CALLEE_HOURS": "off",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    stale = tmp_path / "var" / "metrics" / "counter_old-1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier run")
    reset_settings()
    stack = Stack(get_settings(), tmp_path / "logs", worker_args=["--pool", "threads", "--concurrency", "2"])
    api = f"http://127.0.0.1:{api_port}"
    try:
        stack.start()
        assert not stale.exists()  # emptied at start
        before = scrape(api)
        assert before[ACCEPTED] == 0  # made at 0 by the API itself
        settings = stack.settings
        engine = make_engine(settings.resolved_database_url())
        enqueue_call(engine, CallBody(to_number="+12125551234", account="sim-callkaro"), datetime.now(UTC), settings)
        deadline = time.monotonic() + 60
        while scrape(api)[ACCEPTED] < 1:
            assert time.monotonic() < deadline, (tmp_path / "logs" / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        # Counted in the worker process, served by the API process.
        assert list((tmp_path / "var" / "metrics").glob("counter_*.db"))
        engine.dispose()
    finally:
        stack.stop()
        reset_settings()
