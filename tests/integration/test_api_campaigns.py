"""Campaigns through the HTTP API on both databases: create, list, status, pause, resume, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.models import JobState
from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import LeadIn, add_leads
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings
from outdial.store import breakers as breaker_store
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store

NUMBERS = ["+12125551234", "+12125551235", "+12125551236"]


@pytest.fixture
def http(settings: Settings, engine: Engine) -> TestClient:
    key = create_key(engine, "tests", datetime.now(UTC))
    client = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def make_campaign(http: TestClient, name: str = "spring", **fields: Any) -> dict[str, Any]:
    response = http.post("/campaigns", json={"name": name, "account": "ck", "callee_hours": None, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def add(engine: Engine, settings: Settings, name: str, numbers: list[str]) -> None:
    with engine.connect() as conn:
        campaign = campaign_store.by_name(conn, name)
    assert campaign is not None
    add_leads(engine, settings, campaign, [LeadIn(n) for n in numbers], datetime.now(UTC))


def states(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        counts = job_store.counts_by_state(conn)
    return sorted(s for s, n in counts.items() for _ in range(n))


def test_create_list_get(http: TestClient, engine: Engine, settings: Settings) -> None:
    made = make_campaign(http, timezone="Asia/Kolkata", min_trigger_time="10:00", retry_on=["busy"])
    assert made["name"] == "spring" and made["state"] == "active" and made["retry_on"] == ["busy"]
    assert made["timing"] == {"timezone": "Asia/Kolkata", "min_trigger_time": "10:00", "callee_hours": None}
    add(engine, settings, "spring", NUMBERS)
    listed = http.get("/campaigns").json()
    assert [(c["name"], c["counts"]) for c in listed] == [("spring", {"scheduled": 3})]
    got = http.get("/campaigns/spring").json()
    assert got["id"] == made["id"] and got["counts"] == {"scheduled": 3}
    assert http.get("/campaigns/nope").status_code == 404


def test_create_refuses_bad_input_naming_the_field(http: TestClient) -> None:
    make_campaign(http)
    assert http.post("/campaigns", json={"name": "spring", "account": "ck"}).status_code == 409
    cases = {
        "account": {"name": "a", "account": "nope"},
        "min_trigger_time": {"name": "b", "account": "ck", "min_trigger_time": "25:00"},
        "retry_on": {"name": "c", "account": "ck", "retry_on": ["maybe"]},
        "cron": {"name": "d", "account": "ck", "cron": "every tuesday"},
        "name": {"name": "a/b", "account": "ck"},
        "colour": {"name": "e", "account": "ck", "colour": "red"},
    }
    for field, body in cases.items():
        response = http.post("/campaigns", json=body)
        assert response.status_code == 422, (field, response.text)
        assert field in [d["field"] for d in response.json()["detail"]], (field, response.json())


def test_names_with_control_characters_are_422_not_a_database_error(http: TestClient) -> None:
    make_campaign(http)
    for path in ("/campaigns/a%00b", "/campaigns/a%00b/status", "/campaigns/a%1fb/pause"):
        method = http.post if path.endswith("pause") else http.get
        response = method(path)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["field"] == "name"
    assert http.post("/campaigns", json={"name": "a\x00b", "account": "ck"}).status_code == 422


def test_pause_stops_claims_resume_restarts_them(http: TestClient, engine: Engine, settings: Settings) -> None:
    make_campaign(http)
    add(engine, settings, "spring", NUMBERS[:1])
    paused = http.post("/campaigns/spring/pause")
    assert paused.json() == {"campaign": "spring", "state": "paused", "changed": True}
    assert http.post("/campaigns/spring/pause").json()["changed"] is False  # a no-op, not an error
    assert http.get("/campaigns/spring").json()["pause_reason"] == "paused by api:tests"

    sent: list[int] = []
    later = datetime.now(UTC) + timedelta(seconds=5)
    Scheduler(engine, settings, sent.append).tick(later)
    assert sent == []  # the scheduler skips paused campaigns
    assert http.post("/campaigns/spring/resume").json() == {"campaign": "spring", "state": "active", "changed": True}
    Scheduler(engine, settings, sent.append).tick(later)
    assert len(sent) == 1


def test_resume_closes_the_breaker_that_paused_the_campaign(http: TestClient, engine: Engine) -> None:
    made = make_campaign(http)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        breaker_store.trip(conn, "campaign", str(made["id"]), "circuit breaker: 20 of 20 failed", now)
        campaign_store.set_state(conn, made["id"], ["active"], "paused", now, "circuit breaker: 20 of 20 failed")
    assert http.post("/campaigns/spring/resume").json()["state"] == "active"
    with engine.connect() as conn:
        found = [b for b in breaker_store.all_breakers(conn) if b.name == str(made["id"])]
    assert [b.open for b in found] == [False]


def test_cancel_cancels_every_job_not_yet_dialled(http: TestClient, engine: Engine, settings: Settings) -> None:
    made = make_campaign(http)
    add(engine, settings, "spring", NUMBERS)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = [j.id for j in job_store.due_jobs(conn, now + timedelta(seconds=5), 10)]
        job_store.claim(conn, ids[:2], now)  # two handed to Celery ...
        job = job_store.get_job(conn, ids[0])
        assert job_store.begin_dial(conn, job, "callkaro", now) is not None  # ... one being dialled
    response = http.post("/campaigns/spring/cancel")
    assert response.json() == {"campaign": "spring", "state": "cancelled", "changed": True, "cancelled_jobs": 2}
    assert states(engine) == ["cancelled", "cancelled", "dialing"]
    with engine.connect() as conn:  # the bulk cancel still writes each job's history
        history = {i: [(e.from_state, e.to_state) for e in job_store.job_events_of(conn, i)] for i in ids}
    assert history[ids[0]] == [("scheduled", "queued"), ("queued", "dialing")]
    assert history[ids[1]] == [("scheduled", "queued"), ("queued", "cancelled")]
    assert history[ids[2]] == [("scheduled", "cancelled")]
    assert http.post("/campaigns/spring/cancel").json()["changed"] is False
    assert http.post("/campaigns/spring/resume").status_code == 409
    assert http.post("/campaigns/spring/pause").status_code == 409
    assert http.get(f"/campaigns/{made['name']}").json()["state"] == "cancelled"


def test_status_counts_outcomes_next_due_rate_and_errors(http: TestClient, engine: Engine, settings: Settings) -> None:
    make_campaign(http, schedule_at="2099-01-05T10:00:00+00:00")
    add(engine, settings, "spring", NUMBERS)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        job = job_store.jobs_in(conn, [1, 2, 3])
        first, second = job[0], job[1]
        for j in (first, second):
            job_store.claim(conn, [j.id], now)
            started = job_store.begin_dial(conn, job_store.get_job(conn, j.id), "callkaro", now)
            assert started is not None
        # The first was answered; the second's request failed.
        job_store.complete(conn, first.id, JobState.DIALING, now, None, last_outcome="completed")
        attempt = job_store.open_attempt(conn, second.id)
        assert attempt is not None
        job_store.record_response(conn, attempt.id, result="rejected", http_status=400, error="bad agent_id")
        job_store.reject(conn, second.id, JobState.DIALING, now, "bad agent_id", reason="bad agent_id")
    status = http.get("/campaigns/spring/status").json()
    assert status["jobs"] == 3 and status["done"] == 2 and status["finished"] is False
    assert {k: v for k, v in status["counts"].items() if v} == {"scheduled": 1, "completed": 1, "rejected": 1}
    assert status["outcomes"] == {"completed": 1}
    assert status["next_due_at"].startswith("2099-01-05T10:00:00")
    # Both dials are the campaign's first, a moment ago: a rate over the minute it has dialled.
    assert status["dial_rate"] == {"window_minutes": 1.0, "attempts": 2, "per_minute": 2.0, "partial": True}
    assert [(e["job_id"], e["http_status"], e["error"]) for e in status["recent_errors"]] == [
        (second.id, 400, "bad agent_id")
    ]
