"""``/metrics``: what the worker counts, what the API reads at scrape time, summed over processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis
import respx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from outdial.api.app import create_app
from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import LeadIn, add_leads, cancel, create_campaign, pause, resume
from outdial.services.dispatch import Dispatcher
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.outcomes import record_event
from outdial.services.providers.accounts import load_accounts
from outdial.services.providers.base import CallEvent, Outcome
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import breakers as breaker_store
from outdial.store import campaigns as campaign_store

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
URL = "http://callkaro.test/call/outbound"
REPO = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def scrape(settings: Settings, engine: Engine) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    app = create_app(settings, engine, load_accounts(settings.accounts_file))
    response = TestClient(app).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


OUTCOMES = ("outdial_call_outcomes_total",)
ACCEPTED = ("outdial_attempts_total", (("provider", "callkaro"), ("result", "accepted")))
LATENCY_COUNT = ("outdial_provider_latency_seconds_count", (("provider", "callkaro"),))
LATENESS_COUNT = ("outdial_dispatch_lateness_seconds_count", (("provider", "callkaro"),))
LATENESS_SUM = ("outdial_dispatch_lateness_seconds_sum", (("provider", "callkaro"),))


@respx.mock
def test_dispatch_and_scrape_time_gauges(settings: Settings, engine: Engine, redis_url: str) -> None:
    settings.redis_url = redis_url
    respx.post(URL).mock(return_value=httpx.Response(200, json={"status": "success", "call_sid": "c1"}))
    body = CallBody.model_validate({"to_number": "+12125551234", "account": "ck", "timezone": "America/New_York"})
    job_id = enqueue_call(engine, body, NOW, settings).job_id
    for _ in range(2):  # still scheduled
        enqueue_call(engine, body.model_copy(update={"to_number": "+12125551235"}), NOW, settings)
    before = scrape(settings, engine)

    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(NOW)
    assert job_id in sent
    late = NOW.replace(second=7)  # requested 7 s after it was due
    Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client()).dispatch(job_id, late)
    with engine.begin() as conn:
        breaker_store.trip(conn, "account", "ck", "test", NOW)
    broker = redis.Redis.from_url(redis_url)
    broker.rpush(settings.queue, b"a", b"b", b"c")
    try:
        after = scrape(settings, engine)
    finally:
        broker.delete(settings.queue)

    assert after[ACCEPTED] - before.get(ACCEPTED, 0) == 1
    assert after[LATENCY_COUNT] - before.get(LATENCY_COUNT, 0) == 1
    assert after[LATENESS_COUNT] - before.get(LATENESS_COUNT, 0) == 1
    assert after[LATENESS_SUM] - before.get(LATENESS_SUM, 0) >= 7
    assert after[("outdial_jobs", (("state", "accepted"),))] == 1
    assert after[("outdial_jobs", (("state", "queued"),))] == 2
    assert after[("outdial_jobs", (("state", "completed"),))] == 0  # every state is present
    assert after[("outdial_circuit_breakers_open", (("scope", "account"),))] == 1
    assert after[("outdial_queue_depth", (("queue", settings.queue),))] == 3


def test_scrape_survives_a_broker_that_is_down(settings: Settings, engine: Engine) -> None:
    settings.redis_url = "redis://127.0.0.1:18349/0"
    found = scrape(settings, engine)
    assert ("outdial_jobs", (("state", "scheduled"),)) in found
    assert not any(name == "outdial_queue_depth" for name, _ in found)


WORKER = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from outdial import metrics
    now = datetime.now(UTC)
    def observe(n):
        for _ in range(n):
            metrics.observe_dial("callkaro", "accepted", 120.0, now, now)
        metrics.observe_pacing_wait("ck")
    observe(int(sys.argv[1]))
    if len(sys.argv) > 2:  # a prefork child: values written after the fork go to a file of its own
        pid = os.fork()
        if pid == 0:
            observe(int(sys.argv[2]))
            os._exit(0)
        os.waitpid(pid, 0)
    """
)

API = textwrap.dedent(
    """
    from fastapi.testclient import TestClient
    from outdial.api.app import create_app
    print(TestClient(create_app()).get("/metrics").text)
    """
)


def test_counts_add_up_across_worker_processes(tmp_path: Path, sqlite_url: str, settings: Settings) -> None:
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "OUTDIAL_DATABASE_URL": sqlite_url,
        "OUTDIAL_ACCOUNTS_FILE": str(settings.accounts_file),
        "OUTDIAL_REDIS_URL": "redis://127.0.0.1:18349/0",
    }
    for args in (["3", "2"], ["4"]):
        subprocess.run([sys.executable, "-c", WORKER, *args], env=env, cwd=REPO, check=True, timeout=60)
    assert len(list(multiproc.glob("counter_*.db"))) == 3  # parent, forked child, second worker
    out = subprocess.run(
        [sys.executable, "-c", API], env=env, cwd=REPO, check=True, timeout=60, capture_output=True, text=True
    ).stdout
    found = samples(out)
    assert found[ACCEPTED] == 9
    assert found[LATENCY_COUNT] == 9
    assert found[("outdial_pacing_waits_total", (("account", "ck"),))] == 3


def test_counters_start_at_zero_outcomes_are_counted_and_live_campaigns_are_labelled(
    settings: Settings, engine: Engine
) -> None:
    settings.redis_url = "redis://127.0.0.1:18349/0"  # no broker: the queue gauge is left out, the rest stays
    now = datetime.now(UTC)
    spring = create_campaign(engine, settings, "spring", "ck", TimingFields(callee_hours=None), now)
    create_campaign(engine, settings, "old", "ck", TimingFields(callee_hours=None), now)
    cancel(engine, "old", now, "test")
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, spring)
    add_leads(engine, settings, campaign, [LeadIn("+12125551234"), LeadIn("+12125551235")], now)
    pause(engine, "spring", now, "test")
    before = scrape(settings, engine)
    # Made at 0 before anything happened: no "No data" panel.
    for outcome in ("completed", "no_answer", "busy", "voicemail", "failed"):
        assert (OUTCOMES[0], (("outcome", outcome), ("provider", "callkaro"))) in before
    assert ("outdial_circuit_breaker_trips_total", (("scope", "campaign"),)) in before
    assert ("outdial_attempts_total", (("provider", "callkaro"), ("result", "unknown"))) in before
    # Per campaign, for campaigns not ended only; a paused campaign's jobs are not "active" anywhere.
    paused = ("outdial_campaign_jobs", (("campaign", "spring"), ("campaign_state", "paused"), ("state", "scheduled")))
    assert before[paused] == 2
    assert not any(dict(labels).get("campaign") == "old" for _, labels in before)
    assert before[("outdial_jobs_due", (("account", "ck"),))] == 0  # paused: nothing claimable

    resume(engine, "spring", now)
    assert scrape(settings, engine)[("outdial_jobs_due", (("account", "ck"),))] == 2
    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(now)  # both queued: no longer due
    with respx.mock:
        respx.post(URL).mock(return_value=httpx.Response(200, json={"status": "success", "call_sid": "c9"}))
        dispatcher = Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client())
        assert str(dispatcher.dispatch(sent[0], now)) == "accepted"
    event = CallEvent("c9", "c9:end", "CLIENT_INITIATED", Outcome.COMPLETED, now)
    assert record_event(engine, "callkaro", "ck", event, "{}", "webhook", now, settings) == "applied"
    assert record_event(engine, "callkaro", "ck", event, "{}", "webhook", now, settings) == "duplicate"
    after = scrape(settings, engine)
    completed = (OUTCOMES[0], (("outcome", "completed"), ("provider", "callkaro")))
    assert after[completed] - before[completed] == 1  # once, however often it is reported
    assert after[("outdial_jobs_due", (("account", "ck"),))] == 0
