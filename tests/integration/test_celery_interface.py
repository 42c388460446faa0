"""The Celery interface through a real Redis broker and a real worker: the same job as the API, once per key.

The worker is Celery's embedded test worker (a thread, solo pool) consuming
this test's own queue; the caller is a bare ``Celery(broker=...)`` with
``send_task``, as another service would be.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import signals
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.models import Job
from outdial.services.campaigns import create_campaign
from outdial.services.providers.accounts import load_accounts
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import table
from outdial.worker.intake_tasks import ENQUEUE_TASK, IMPORT_TASK
from tests.integration.conftest import wait_for

jobs = table(Job)
BODY: dict[str, Any] = {
    "to_number": "+12125551234",
    "account": "ck",
    "agent_id": "agent-7",
    "language": "en",
    "metadata": {"name": "Asha", "order": 1001},
    "schedule_at": "2099-03-02T15:00:00+00:00",
    "timezone": "America/New_York",
    "min_trigger_time": "09:00",
    "max_trigger_time": "18:00",
    "days_of_week": "mon,tue,wed,thu,fri",
    "number_of_retries": 2,
    "gap_between_retries": [30, 120],
    "priority": 3,
}
# Columns that differ between two jobs made from the same input at different moments.
MADE_AT = {"id", "idempotency_key", "created_at", "state_changed_at"}


def job_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(jobs).order_by(jobs.c.id))]


def keyed(engine: Engine, key: str) -> bool:
    return any(r["idempotency_key"] == key for r in job_rows(engine))


def api_client(settings: Settings, engine: Engine) -> TestClient:
    http = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    http.headers["X-API-Key"] = create_key(engine, "tests", datetime.now(UTC))
    return http


def test_the_api_and_the_task_make_the_same_job(
    worker: Callable[..., None], engine: Engine, settings: Settings
) -> None:
    http = api_client(settings, engine)
    assert http.post("/calls", json=BODY, headers={"Idempotency-Key": "via-api"}).status_code == 201
    worker(ENQUEUE_TASK, **BODY, idempotency_key="via-celery")
    wait_for(lambda: keyed(engine, "via-celery"))
    by_api, by_task = job_rows(engine)
    assert by_api["idempotency_key"] == "via-api" and by_task["idempotency_key"] == "via-celery"
    same = {k: v for k, v in by_api.items() if k not in MADE_AT}
    assert {k: v for k, v in by_task.items() if k not in MADE_AT} == same
    assert same["options"] == {"agent_id": "agent-7", "language": "en"} and same["priority"] == 3
    assert same["next_due_at"] == datetime(2099, 3, 2, 15, 0, tzinfo=UTC)
    # The caller finds its job through the key.
    found = http.get("/jobs", params={"idempotency_key": "via-celery"}).json()
    assert [j["id"] for j in found] == [by_task["id"]]


def test_enqueue_call_succeeds_with_logging_at_info(worker: Callable[..., None], engine: Engine) -> None:
    """The task logs its line at INFO and ends in SUCCESS (a bad ``extra=`` key once failed every one)."""
    states: dict[str, str] = {}
    lines: list[logging.LogRecord] = []

    def succeeded(sender: Any = None, **_: Any) -> None:
        if sender.name == ENQUEUE_TASK:
            states[sender.request.id] = "SUCCESS"

    def failed(sender: Any = None, task_id: str = "", exception: BaseException | None = None, **_: Any) -> None:
        if sender.name == ENQUEUE_TASK:
            states[task_id] = f"FAILURE: {exception!r}"

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record)

    task_log = logging.getLogger("outdial.intake_tasks")
    handler, level = Lines(logging.INFO), task_log.level
    task_log.addHandler(handler)
    task_log.setLevel(logging.INFO)
    signals.task_success.connect(succeeded, weak=False)
    signals.task_failure.connect(failed, weak=False)
    try:
        worker(ENQUEUE_TASK, **BODY, idempotency_key="logged")
        wait_for(lambda: bool(states))
    finally:
        signals.task_success.disconnect(succeeded)
        signals.task_failure.disconnect(failed)
        task_log.removeHandler(handler)
        task_log.setLevel(level)
    assert list(states.values()) == ["SUCCESS"]
    assert keyed(engine, "logged")
    (line,) = [r for r in lines if r.getMessage() == "call enqueued"]
    assert line.created_ is True and line.job_id == job_rows(engine)[0]["id"]  # type: ignore[attr-defined]


def test_a_repeated_key_never_makes_a_second_job(
    worker: Callable[..., None], engine: Engine, settings: Settings
) -> None:
    for _ in range(5):
        worker(ENQUEUE_TASK, **BODY, idempotency_key="order-1001")
    worker(ENQUEUE_TASK, **{**BODY, "to_number": "+12125551299"}, idempotency_key="sentinel")
    wait_for(lambda: keyed(engine, "sentinel"))  # tasks run in order: the five came before it
    rows = job_rows(engine)
    assert sorted(r["idempotency_key"] for r in rows) == ["order-1001", "sentinel"]
    # The API with the same key answers with that same job, and makes none.
    again = api_client(settings, engine).post("/calls", json=BODY, headers={"Idempotency-Key": "order-1001"})
    assert again.status_code == 200
    assert again.json()["job_id"] == next(r["id"] for r in rows if r["idempotency_key"] == "order-1001")
    assert len(job_rows(engine)) == 2


def test_invalid_arguments_make_no_job_and_do_not_stop_the_worker(worker: Callable[..., None], engine: Engine) -> None:
    worker(ENQUEUE_TASK, **{**BODY, "to_number": "not-a-number"}, idempotency_key="bad-1")
    worker(ENQUEUE_TASK, **{**BODY, "account": "nope"}, idempotency_key="bad-2")
    worker(ENQUEUE_TASK, **{**BODY, "colour": "red"}, idempotency_key="bad-3")
    worker(ENQUEUE_TASK, **BODY, idempotency_key="x" * 201)
    worker(ENQUEUE_TASK, **BODY, idempotency_key="good")
    wait_for(lambda: keyed(engine, "good"))
    assert [r["idempotency_key"] for r in job_rows(engine)] == ["good"]


def test_import_leads_task_imports_the_csv_it_is_sent(
    worker: Callable[..., None], engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    create_campaign(engine, settings, "winter", "ck", TimingFields(), datetime.now(UTC))
    csv = "mobile|name\n098765 43210|Asha\n+12125551234|Bob\nnope|Carl\n"
    worker(IMPORT_TASK, campaign="winter", csv=csv, default_region="IN")
    wait_for(lambda: len(job_rows(engine)) == 2)
    with engine.connect() as conn:
        campaign = campaign_store.by_name(conn, "winter")
        assert campaign is not None
        phones = [lead.phone for lead in campaign_store.leads_of(conn, campaign.id)]
    assert phones == ["+919876543210", "+12125551234"]
    # The reject report is written under the data directory, as an upload's.
    wait_for(lambda: any((settings.data_dir / "reports").glob("*.report.csv")))
    assert "nope" in next((settings.data_dir / "reports").glob("*.report.csv")).read_text()


def test_the_example_client_names_an_unreachable_broker_in_one_line() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "celery_client.py"
    argv = ["--broker", "redis://127.0.0.1:1/0", "--to", "+12125551234", "--account", "sim-callkaro"]
    done = subprocess.run([sys.executable, str(example), *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the broker redis://127.0.0.1:1/0") and "--broker" in line


def test_the_example_client_enqueues_a_call(
    worker: Callable[..., None], engine: Engine, settings: Settings, redis_url: str
) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "celery_client.py"
    argv = ["--broker", redis_url, "--queue", settings.queue, "--to", "+12125551234", "--account", "ck"]
    done = subprocess.run(
        [sys.executable, str(example), *argv, "--key", "from-example"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "GET /jobs?idempotency_key=from-example" in done.stdout
    wait_for(lambda: keyed(engine, "from-example"))
    (job,) = job_rows(engine)
    assert job["variables"] == {"name": "Asha", "order_id": "A-1001"} and job["state"] == "scheduled"
