"""Single calls through ``POST /calls``: a repeated Idempotency-Key returns the first job, even under concurrency."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, func, select

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.errors import ConfigError, Conflict, InputError, NotFound
from outdial.models import Job
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings
from outdial.store import jobs as job_store
from outdial.store import table

BODY = {"to_number": "+12125551234", "account": "ck", "metadata": {"name": "Asha"}, "timezone": "America/New_York"}


@pytest.fixture
def http(settings: Settings, engine: Engine) -> TestClient:
    key = create_key(engine, "tests", datetime.now(UTC))
    client = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def job_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table(Job))).scalar_one())


def test_a_repeated_key_returns_the_first_job(http: TestClient, engine: Engine) -> None:
    first = http.post("/calls", json=BODY, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 201 and first.json()["created"] is True
    again = http.post("/calls", json=BODY, headers={"Idempotency-Key": "order-1"})
    assert again.status_code == 200
    assert again.json() == {**first.json(), "created": False}
    assert job_count(engine) == 1
    # The same key with another request is somebody else's: a 409, never the first job.
    other_body = http.post("/calls", json={**BODY, "priority": 5}, headers={"Idempotency-Key": "order-1"})
    assert other_body.status_code == 409
    assert "order-1" in other_body.json()["detail"] and "different request" in other_body.json()["detail"]
    assert job_count(engine) == 1
    other = http.post("/calls", json=BODY, headers={"Idempotency-Key": "order-2"})
    assert other.status_code == 201 and other.json()["job_id"] != first.json()["job_id"]
    found = http.get("/jobs", params={"idempotency_key": "order-1"}).json()
    assert [j["id"] for j in found] == [first.json()["job_id"]]
    assert found[0]["priority"] == 0  # the repeat changed nothing
    assert http.get("/jobs", params={"idempotency_key": "never-sent"}).json() == []


def test_without_a_key_each_request_is_a_new_job(http: TestClient, engine: Engine) -> None:
    assert http.post("/calls", json=BODY).status_code == 201
    assert http.post("/calls", json=BODY).status_code == 201
    assert job_count(engine) == 2


def test_concurrent_requests_with_one_key_make_one_job(
    http: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises writers)")
    inserts: list[int] = []
    real_insert = job_store.insert_job

    def slow_insert(conn: Connection, values: dict[str, Any]) -> int:
        # Every request gets past "is this key known?" before the first insert commits:
        # the race is certain, not left to luck.
        inserts.append(1)
        time.sleep(0.3)
        return real_insert(conn, values)

    monkeypatch.setattr(job_store, "insert_job", slow_insert)
    threads = 16
    start = threading.Barrier(threads)

    def send(_: int) -> tuple[int, int]:
        start.wait()
        response = http.post("/calls", json=BODY, headers={"Idempotency-Key": "burst"})
        return response.status_code, response.json()["job_id"]

    for _round in range(3):
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(send, range(threads)))
        assert len({job_id for _, job_id in results}) == 1
        assert sorted(code for code, _ in results).count(201) <= 1
        assert {code for code, _ in results} <= {200, 201}
    assert job_count(engine) == 1
    assert len(inserts) > 1  # several requests did race to insert


def test_job_status_shows_state_and_attempts(http: TestClient) -> None:
    job_id = http.post("/calls", json=BODY).json()["job_id"]
    job = http.get(f"/jobs/{job_id}").json()
    assert (job["id"], job["state"], job["to_number"], job["attempts"]) == (job_id, "scheduled", "+12125551234", [])
    assert job["events"] == []  # no transition yet: created scheduled
    assert http.get(f"/jobs/{job_id + 1}").status_code == 404
    assert http.get(f"/jobs/{2**64}").status_code == 422


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"to_number": "12125551234"}, "to_number"),
        ({"to_number": "+999999999"}, "to_number"),
        ({"account": "nope"}, "account"),
        ({"min_trigger_time": "9am"}, "min_trigger_time"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"days_of_week": ["funday"]}, "days_of_week"),
        ({"language": "xx"}, "language"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(http: TestClient, change: dict[str, object], field: str) -> None:
    response = http.post("/calls", json={**BODY, **change})
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["detail"]]


def test_an_overlong_idempotency_key_is_422(http: TestClient) -> None:
    response = http.post("/calls", json=BODY, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 422
    assert "idempotency-key" in [d["field"] for d in response.json()["detail"]]


@pytest.mark.parametrize("schedule_at", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+14:00"])
def test_dates_beyond_the_calendar_are_422_naming_schedule_at(http: TestClient, schedule_at: str) -> None:
    response = http.post("/calls", json={**BODY, "schedule_at": schedule_at})
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["detail"]] == ["schedule_at"]


def test_control_characters_in_keys_are_422_on_both_databases(http: TestClient) -> None:
    # PostgreSQL text cannot hold NUL: refused by validation, never a driver error.
    response = http.get("/jobs", params={"idempotency_key": "a\x00b"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "idempotency_key"
    stored = http.post("/calls", json={**BODY, "metadata": {"note": "a\x00b"}, "agent_id": "x\x00"})
    assert stored.status_code == 201  # inside JSON a NUL is an escape, and stored as such


def test_a_body_that_is_not_json_names_the_body_not_an_offset(http: TestClient) -> None:
    response = http.post(
        "/calls", content=b'{"to_number": "+12125551234",, }', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["field"] == "body" and problem["type"] == "json_invalid"
    assert problem["msg"] == "JSON decode error at character 29"


PAST = {**BODY, "timezone": "UTC", "min_trigger_time": "09:00", "max_trigger_time": "18:00"}


def test_a_schedule_at_whose_window_has_closed_is_told_at_once_as_plan_says(http: TestClient) -> None:
    """Rule 7 at creation: the caller learns in the answer what the scheduler would find a moment later."""
    from outdial.cli.plan import plan_json

    now = datetime.now(UTC)
    spec = {**PAST, "schedule_at": "2020-01-06T10:00:00"}
    answer = http.post("/calls", json=spec)
    assert answer.status_code == 201
    assert answer.json() | {"job_id": 0} == {
        "job_id": 0,
        "state": "expired",
        "created": True,
        "next_due_at": None,
        "reason": "window_closed",
    }
    assert plan_json(json.dumps(spec), now, 0) == {"attempts": [], "outcome": "expired"}

    # With carry-over it moves to the next window, as the plan's first attempt does.
    carried = http.post("/calls", json={**spec, "carry_over": True}).json()
    assert carried["state"] == "scheduled" and datetime.fromisoformat(carried["next_due_at"]) >= now - timedelta(1)
    first = plan_json(json.dumps({**spec, "carry_over": True}), now, 0)["attempts"][0]  # type: ignore[index]
    # Equal when today's window is closed (both name its opening); a moment apart when it is open now, since
    # the service and the plan each read the clock.
    assert abs(datetime.fromisoformat(first) - datetime.fromisoformat(carried["next_due_at"])) < timedelta(seconds=5)


def test_a_past_schedule_at_inside_its_open_window_is_due_at_once(http: TestClient) -> None:
    now = datetime.now(UTC)
    # Callee hours off and no trigger window: open at any hour, so the test does not depend on the time it runs.
    spec = {**BODY, "timezone": "UTC", "callee_hours": "off", "schedule_at": (now - timedelta(minutes=5)).isoformat()}
    answer = http.post("/calls", json=spec).json()
    assert answer["state"] == "scheduled" and datetime.fromisoformat(answer["next_due_at"]) <= datetime.now(UTC)
    # ``reason`` only when the job ended at once: not a null in every other answer.
    assert sorted(answer) == ["created", "job_id", "next_due_at", "state"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConfigError("OUTDIAL_X is not set: export OUTDIAL_X=..."), 500),
        (NotFound("no campaign named 'x'"), 404),
        (Conflict("campaign 'x' is cancelled"), 409),
        (InputError("is not a number", field="to_number"), 422),
    ],
)
def test_outdial_errors_answer_with_their_status_and_line(
    settings: Settings, engine: Engine, error: Exception, status: int
) -> None:
    app = create_app(settings, engine, load_accounts(settings.accounts_file))

    @app.get("/_refuse")
    def refuse() -> None:
        raise error

    response = TestClient(app, raise_server_exceptions=False).get("/_refuse")
    assert response.status_code == status
    detail = response.json()["detail"]
    if status == 500:  # the deployment's fault: logged in full, never shown to the caller
        assert detail == "outdial is misconfigured; see its log" and "OUTDIAL_X" not in response.text
    else:
        assert detail == str(error) if status != 422 else detail[0]["field"] == "to_number"
