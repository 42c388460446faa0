"""An operator's verbs on both databases: list a campaign's jobs, retry and cancel them, export,
start paused, see completion, and read why a campaign is not dialling; over HTTP and the CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, update
from typer.testing import CliRunner

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.cli import app as cli
from outdial.models import CampaignState, Job, JobState
from outdial.services import campaigns, progress
from outdial.services import jobs as job_service
from outdial.services.campaigns import LeadIn, add_leads
from outdial.services.providers.accounts import load_accounts
from outdial.services.waiting import Why, explain
from outdial.settings import Settings, reset_settings
from outdial.store import breakers as breaker_store
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.store import ops as ops_store
from outdial.store import progress as progress_store
from outdial.store import table

NUMBERS = [f"+1212555{1000 + i:04d}" for i in range(7)]


@pytest.fixture
def http(settings: Settings, engine: Engine) -> TestClient:
    key = create_key(engine, "ops-team", datetime.now(UTC))
    client = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def make(http: TestClient, name: str = "winter", **fields: Any) -> dict[str, Any]:
    response = http.post("/campaigns", json={"name": name, "account": "ck", "callee_hours": None, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def fill(engine: Engine, settings: Settings, name: str, numbers: list[str]) -> list[int]:
    """Leads for the campaign; the ids of their jobs."""
    with engine.connect() as conn:
        campaign = campaign_store.by_name(conn, name)
    assert campaign is not None
    add_leads(engine, settings, campaign, [LeadIn(n) for n in numbers], datetime.now(UTC))
    with engine.connect() as conn:
        return [int(j.id) for j in job_store.campaign_jobs(conn, campaign.id, limit=1000)]


def force(engine: Engine, job_id: int, state: JobState, **values: Any) -> None:
    """Put a job in a state as the dispatch path would have (test data: a plain update, not a walk
    through the state machine, which tests/integration/test_job_states.py covers)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(table(Job))
            .where(table(Job).c.id == job_id)
            .values(state=state, state_changed_at=datetime.now(UTC), **values)
        )
        assert done.rowcount == 1


def test_jobs_are_listed_a_page_at_a_time_and_filtered(http: TestClient, engine: Engine, settings: Settings) -> None:
    make(http)
    ids = fill(engine, settings, "winter", NUMBERS)
    force(engine, ids[1], JobState.UNKNOWN, reason="no outcome reported in time")
    force(engine, ids[4], JobState.COMPLETED, last_outcome="voicemail")
    seen: list[int] = []
    after = 0
    while True:
        page = http.get("/campaigns/winter/jobs", params={"limit": 3, "after": after}).json()
        seen += [j["id"] for j in page["jobs"]]
        assert len(page["jobs"]) <= 3
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == ids  # every job once, in id order
    unknown = http.get("/campaigns/winter/jobs", params={"state": "unknown"}).json()
    assert [(j["id"], j["reason"]) for j in unknown["jobs"]] == [(ids[1], "no outcome reported in time")]
    assert unknown["jobs"][0]["latest_attempt"] == {"raw_status": None, "http_status": None, "error": None}
    voicemail = http.get("/campaigns/winter/jobs", params={"outcome": "voicemail"}).json()
    assert [j["id"] for j in voicemail["jobs"]] == [ids[4]]
    both = http.get("/campaigns/winter/jobs", params=[("state", "unknown"), ("state", "completed")]).json()
    assert [j["id"] for j in both["jobs"]] == [ids[1], ids[4]]
    bad = http.get("/campaigns/winter/jobs", params={"state": "lost"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "state.0"
    assert "(got 'lost')" in bad.json()["detail"][0]["msg"] and "'unknown'" in bad.json()["detail"][0]["msg"]
    assert http.get("/campaigns/nope/jobs").status_code == 404


def test_retrying_an_unknown_job_is_recorded_with_its_key(http: TestClient, engine: Engine, settings: Settings) -> None:
    make(http)
    ids = fill(engine, settings, "winter", NUMBERS[:3])
    force(engine, ids[0], JobState.UNKNOWN, reason="worker lost during the request", transport_retries=2)
    force(engine, ids[1], JobState.COMPLETED, last_outcome="completed")

    retried = http.post(f"/jobs/{ids[0]}/retry")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["state"] == "scheduled"
    assert body["reason"] == "retried by api:ops-team (was unknown: worker lost during the request)"
    with engine.connect() as conn:
        job = job_store.get_job(conn, ids[0])
    assert job is not None and job.transport_retries == 0 and job.next_due_at is not None
    assert job.next_due_at <= datetime.now(UTC)  # no window: due at once

    again = http.post(f"/jobs/{ids[0]}/retry")  # scheduled now: nothing to retry
    assert again.status_code == 409 and "only unknown" in again.json()["detail"]
    assert http.post(f"/jobs/{ids[1]}/retry").status_code == 409  # completed calls are not redialled
    assert http.post("/jobs/999999/retry").status_code == 404
    assert TestClient(http.app).post(f"/jobs/{ids[0]}/cancel").status_code == 401  # no key, no change

    cancelled = http.post(f"/jobs/{ids[0]}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["reason"] == "cancelled by api:ops-team"
    assert http.post(f"/jobs/{ids[1]}/cancel").status_code == 409


def test_a_job_in_a_worker_s_hands_is_not_cancelled(engine: Engine, settings: Settings) -> None:
    now = datetime.now(UTC)
    campaigns.create_campaign(engine, settings, "w", "ck", campaigns.TimingFields(callee_hours=None), now)
    ids = fill(engine, settings, "w", NUMBERS[:2])
    force(engine, ids[0], JobState.QUEUED)
    force(engine, ids[0], JobState.DIALING)
    changed = job_service.cancel(engine, [ids[0], ids[1], 424242], "cli:test", now)
    assert changed.done == [ids[1]]
    assert "dialing" in changed.refused[ids[0]] and changed.refused[424242] == "no job 424242"


def test_export_csv_is_streamed_with_every_job(http: TestClient, engine: Engine, settings: Settings) -> None:
    make(http)
    ids = fill(engine, settings, "winter", NUMBERS)
    response = http.get("/campaigns/winter/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="winter.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["job_id"]) for r in rows] == ids
    assert "raw_status" in rows[0]
    assert http.get("/campaigns/nope/export.csv").status_code == 404


def test_the_page_s_export_button_downloads_the_csv_with_the_key_typed_there(
    http: TestClient, engine: Engine, settings: Settings
) -> None:
    created = make(http)
    ids = fill(engine, settings, "winter", NUMBERS)
    make(http, "elsewhere")
    page = TestClient(http.app, follow_redirects=False)  # a browser: no Authorization header
    act = f"/ui/campaigns/{created['id']}/act"
    reader = create_key(engine, "auditor", datetime.now(UTC), scopes=["read", "campaign:winter"])

    download = page.post(act, data={"do": "export", "api_key": reader})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == 'attachment; filename="winter.csv"'
    assert [int(r["job_id"]) for r in csv.DictReader(io.StringIO(download.text))] == ids

    # No key, a wrong key: back to the page saying why; nothing is sent.
    for key in ("", "odk_wrong"):
        refused = page.post(act, data={"do": "export", "api_key": key})
        assert refused.status_code == 303 and "API+key+is+needed" in refused.headers["location"]
    # A key scoped to another campaign does not reach this one.
    other = create_key(engine, "other", datetime.now(UTC), scopes=["campaign:elsewhere"])
    assert page.post(act, data={"do": "export", "api_key": other}).status_code == 404
    assert 'id="export"' in page.get(f"/ui/campaigns/{created['id']}").text
    # A filter the page does not know is said, not silently dropped.
    odd = page.get(f"/ui/campaigns/{created['id']}", params={"state": "lost"}).text
    assert "not filtered by &#39;lost&#39;: no such state or outcome" in odd


def test_the_page_lists_each_job_s_result_without_its_contents(
    http: TestClient, engine: Engine, settings: Settings
) -> None:
    created = make(http)
    (job_id, *_) = fill(engine, settings, "winter", NUMBERS)
    said = "the callee said her card number, 4111 1111 1111 1111"
    force(engine, job_id, JobState.COMPLETED, last_outcome="completed", reason=f"completed (from {NUMBERS[0]})")
    with engine.begin() as conn:
        conn.execute(
            insert(job_store.attempts).values(
                job_id=job_id, number=1, seq=1, account="ck", provider="callkaro", result="accepted",
                outcome="completed", raw_status="completed", http_status=200, requested_at=datetime.now(UTC),
                result_data={"call_duration": 42, "transcript": said, "recording_url": "https://r.test/a?sig=s3cr3t"},
            )
        )  # fmt: skip
    page = TestClient(http.app).get(f"/ui/campaigns/{created['id']}").text  # no key: anyone who reaches it
    rows = page.split('<tr class="job"')[1:]
    (row,) = [r.split("</tr>")[0] for r in rows if f"<td>{job_id}</td>" in r.split("</td>")[0] + "</td>"]
    assert "42 s · recording · transcript" in row and "completed (from …1000)" in row
    assert said not in page and "s3cr3t" not in page and NUMBERS[0] not in page
    # The contents are in the export, which needs a key.
    exported = list(csv.DictReader(io.StringIO(http.get("/campaigns/winter/export.csv").text)))
    assert exported[0]["transcript"] == said and exported[0]["recording_url"].endswith("sig=s3cr3t")


def test_a_campaign_created_paused_dials_nothing_until_resumed(
    http: TestClient, engine: Engine, settings: Settings
) -> None:
    made = make(http, state="paused")
    assert made["state"] == "paused" and made["pause_reason"] == "created paused by api:ops-team"
    fill(engine, settings, "winter", NUMBERS[:2])
    now = datetime.now(UTC) + timedelta(seconds=1)
    with engine.connect() as conn:
        assert job_store.due_jobs(conn, now, 100) == []
        campaign = campaign_store.by_name(conn, "winter")
        assert campaign is not None
        why = explain(conn, campaign, now, settings)
    assert why.why == Why.PAUSED and "created paused by api:ops-team" in why.text
    assert why.next_due is not None  # what would be due, once resumed
    assert http.post("/campaigns/winter/resume").json()["state"] == "active"
    with engine.connect() as conn:
        assert len(job_store.due_jobs(conn, now, 100)) == 2
    bad = http.post("/campaigns", json={"name": "x", "account": "ck", "state": "cancelled"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "state"


def test_a_campaign_completes_when_every_job_ended_and_reopens_with_work(engine: Engine, settings: Settings) -> None:
    now = datetime.now(UTC)
    campaigns.create_campaign(engine, settings, "done-soon", "ck", campaigns.TimingFields(callee_hours=None), now)
    campaigns.create_campaign(engine, settings, "empty", "ck", campaigns.TimingFields(callee_hours=None), now)
    ids = fill(engine, settings, "done-soon", NUMBERS[:2])
    assert campaigns.settle_completion(engine, now) == ([], [])  # jobs to do; "empty" has none at all
    force(engine, ids[0], JobState.COMPLETED, last_outcome="completed")
    force(engine, ids[1], JobState.UNKNOWN)
    assert campaigns.settle_completion(engine, now) == (["done-soon"], [])

    # A retried job gives it work again, at once.
    assert job_service.retry(engine, settings, [ids[1]], "cli:ops", now).done == [ids[1]]
    with engine.connect() as conn:
        assert campaign_store.campaign_state(conn, int(campaign_store.by_name(conn, "done-soon").id)) == "active"  # type: ignore[union-attr]
    force(engine, ids[1], JobState.EXHAUSTED)
    assert campaigns.settle_completion(engine, now) == (["done-soon"], [])
    # So do new leads.
    fill(engine, settings, "done-soon", NUMBERS[2:3])
    with engine.connect() as conn:
        campaign = campaign_store.by_name(conn, "done-soon")
    assert campaign is not None and campaign.state == CampaignState.ACTIVE


def test_why_a_campaign_waits_for_its_window_in_its_zone(engine: Engine, settings: Settings) -> None:
    # 15:00 UTC on a Tuesday is 10:00 in New York: the 12:00-13:00 window opens in two hours.
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    timing = campaigns.TimingFields(
        timezone="America/New_York", min_trigger_time="12:00", max_trigger_time="13:00", callee_hours=None
    )
    campaigns.create_campaign(engine, settings, "lunch", "ck", timing, now)
    with engine.connect() as conn:
        campaign = campaign_store.by_name(conn, "lunch")
    assert campaign is not None
    add_leads(engine, settings, campaign, [LeadIn(NUMBERS[0])], now)
    with engine.connect() as conn:
        why = explain(conn, campaign, now, settings)
    assert why.why == Why.WINDOW_CLOSED and not why.dialling
    assert "window closed until 2026-12-01 12:00 EST America/New_York (17:00 UTC)" in why.text
    assert why.next_due == datetime(2026, 12, 1, 17, 0, tzinfo=UTC) and why.zone == "America/New_York"
    shown = why.as_json()
    assert shown["next_due_local"] == "2026-12-01T12:00:00-05:00" and shown["next_due_at"].startswith("2026-12-01T17")

    # Due, nothing in flight, no worker taking it: pacing (or no scheduler) holds it.
    later = datetime(2026, 12, 1, 17, 5, tzinfo=UTC)
    with engine.connect() as conn:
        assert explain(conn, campaign, later, settings).why == Why.PACING


def test_why_names_each_reason_an_operator_would_fix_in_turn(engine: Engine, settings: Settings) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)  # the leads are due by then
    later = f"{now + timedelta(minutes=30):%Y-%m-%d %H:%M} UTC"
    timing = campaigns.TimingFields(callee_hours=None, number_of_retries=1, gap_between_retries=[30])
    campaigns.create_campaign(engine, settings, "turns", "ck", timing, now)

    def why(at: datetime = now) -> tuple[Why, str]:
        with engine.connect() as conn:
            campaign = campaign_store.by_name(conn, "turns")
            assert campaign is not None
            found = explain(conn, campaign, at, settings)
        return found.why, found.text

    assert why() == (Why.NO_JOBS, "no leads yet (outdial import)")
    (first, second) = fill(engine, settings, "turns", NUMBERS[:2])
    assert why()[0] == Why.PACING and why()[1].startswith("2 calls due now, none in progress")
    force(engine, first, JobState.DIALING)
    assert why() == (Why.DIALLING, "1 calls in progress, 1 more due now")
    # The other waits out its retry gap: nothing due yet, and when it is, in UTC (no zone set).
    force(engine, second, JobState.SCHEDULED, next_due_at=now + timedelta(minutes=30))
    reason, text = why()
    assert reason == Why.DIALLING and text == f"1 calls in progress; next call due {later}"
    force(engine, first, JobState.COMPLETED)
    assert why() == (Why.NOT_DUE, f"nothing due yet (retry gaps or start times); next call due {later}")

    # An open account breaker stops the campaign before its jobs are looked at.
    with engine.begin() as conn:
        assert breaker_store.trip(conn, "account", "ck", "5 of 5 attempts failed", now)
    assert why() == (Why.BREAKER, "account ck's circuit breaker is open (5 of 5 attempts failed); "
                                  "outdial breaker resume account ck")  # fmt: skip
    with engine.begin() as conn:
        breaker_store.reset(conn, "account", "ck", now)
        campaign = campaign_store.by_name(conn, "turns")
        assert campaign is not None
        assert campaigns.breaker_pause(
            conn, campaign.id, now, "circuit breaker: 4 of 5 attempts failed in the last 60 s"
        )
    reason, text = why()
    assert reason == Why.BREAKER and "outdial breaker resume campaign 'turns'" in text
    assert f"next call due {later} once resumed" in text

    campaigns.resume(engine, "turns", now)
    force(engine, second, JobState.EXHAUSTED)
    assert why() == (Why.NOTHING_SCHEDULED, "every job has ended")
    campaigns.cancel(engine, "turns", now, "cancelled by cli:ada: wrong list")
    assert why() == (Why.CANCELLED, "cancelled: cancelled by cli:ada: wrong list")


def test_cli_operator_verbs(db_url: str, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", db_url)
    monkeypatch.setenv("OUTDIAL_ACCOUNTS_FILE", str(settings.accounts_file))
    monkeypatch.setenv("OUTDIAL_DATA_DIR", str(settings.data_dir))
    reset_settings()
    monkeypatch.setattr(job_service.getpass, "getuser", lambda: "ada")
    runner = CliRunner()
    made = runner.invoke(cli, ["campaign", "create", "cli-c", "--account", "ck", "--paused", "--callee-hours", "off"])
    assert made.exit_code == 0 and "paused" in made.stdout, made.output
    ids = fill(engine, settings, "cli-c", NUMBERS[:4])
    force(engine, ids[0], JobState.UNKNOWN)
    force(engine, ids[2], JobState.UNKNOWN)

    shown = json.loads(runner.invoke(cli, ["campaign", "show", "cli-c", "--json"]).stdout)
    assert shown["state"] == "paused" and shown["pause_reason"] == "created paused by cli:ada"
    assert shown["why"]["why"] == "paused" and shown["counts"] == {"scheduled": 2, "unknown": 2}
    text = runner.invoke(cli, ["campaign", "show", "cli-c"])
    assert text.exit_code == 0 and "not dialling: paused (created paused by cli:ada)" in text.stdout

    listed = json.loads(
        runner.invoke(cli, ["jobs", "list", "--campaign", "cli-c", "--state", "unknown", "--json"]).stdout
    )
    assert [j["id"] for j in listed["jobs"]] == [ids[0], ids[2]] and listed["next_after"] is None
    paged = json.loads(runner.invoke(cli, ["jobs", "list", "-c", "cli-c", "--limit", "3", "--json"]).stdout)
    assert len(paged["jobs"]) == 3 and paged["next_after"] == ids[2]

    retried = runner.invoke(cli, ["jobs", "retry", "--campaign", "cli-c", "--state", "unknown", "--json"])
    assert retried.exit_code == 0 and json.loads(retried.stdout) == {"retried": [ids[0], ids[2]], "refused": {}}
    with engine.connect() as conn:
        job = job_store.get_job(conn, ids[0])
    assert job is not None and job.state == "scheduled" and job.reason.startswith("retried by cli:ada")

    # Partly refused: what could be done is done, the rest named, exit 1.
    cancelled = runner.invoke(cli, ["jobs", "cancel", str(ids[1]), "999999"])
    assert cancelled.exit_code == 1 and "1 jobs cancelled" in cancelled.stdout
    assert "no job 999999" in cancelled.stderr

    assert runner.invoke(cli, ["jobs", "retry"]).exit_code == 2  # nothing selected: bad input
    bad = runner.invoke(cli, ["jobs", "list", "--campaign", "cli-c", "--state", "lost"])
    assert bad.exit_code == 2 and "--state" in bad.stderr
    for verb in ("retry", "cancel"):  # the option is named as typed, for the bulk verbs too
        bad = runner.invoke(cli, ["jobs", verb, "--campaign", "cli-c", "--state", "completed"])
        assert bad.exit_code == 2 and bad.stderr.startswith("error: --state: 'completed' is not one of"), bad.stderr
    assert runner.invoke(cli, ["jobs", "list", "--campaign", "nope"]).exit_code == 1

    paused = runner.invoke(cli, ["campaign", "resume", "cli-c"])
    assert paused.exit_code == 0
    runner.invoke(cli, ["campaign", "pause", "cli-c", "--reason", "lunch"])
    with engine.connect() as conn:
        row = campaign_store.by_name(conn, "cli-c")
    assert row is not None and row.pause_reason == "paused by cli:ada: lunch"


def test_the_dial_rate_is_counted_in_the_database_over_the_whole_span(engine: Engine, settings: Settings) -> None:
    t0 = datetime(2026, 12, 1, 15, 0, 30, tzinfo=UTC)
    campaigns.create_campaign(engine, settings, "rate", "ck", campaigns.TimingFields(callee_hours=None), t0)
    ids = fill(engine, settings, "rate", NUMBERS[:3])
    offsets = [0, 10, 29.5, 60, 61, 3 * 3600]  # seconds after t0: three in 15:00, two in 15:01, one 3 h on
    with engine.begin() as conn:
        for seq, offset in enumerate(offsets, start=1):
            conn.execute(
                insert(job_store.attempts).values(
                    job_id=ids[0], number=1, seq=seq, account="ck", provider="callkaro",
                    requested_at=t0 + timedelta(seconds=offset),
                )
            )  # fmt: skip
        campaign_id = int(job_store.get_job(conn, ids[0]).campaign_id)  # type: ignore[union-attr]
        first, last = ops_store.attempt_span(conn, campaign_id)  # type: ignore[misc]
        assert (first, last) == (t0, t0 + timedelta(hours=3))
        minute = ops_store.attempt_buckets(conn, campaign_id, datetime(2026, 12, 1, 15, 0, tzinfo=UTC), 60)
        assert minute == {0: 3, 1: 2, 180: 1}
        five = ops_store.attempt_buckets(conn, campaign_id, datetime(2026, 12, 1, 15, 0, tzinfo=UTC), 300)
        assert five == {0: 5, 36: 1}


def test_the_dial_rates_count_only_dials_and_the_five_minute_rate_only_the_time_dialled(
    http: TestClient, engine: Engine, settings: Settings
) -> None:
    # Three minutes ago on the minute: the page draws this active campaign up to now.
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    campaigns.create_campaign(engine, settings, "young", "ck", campaigns.TimingFields(callee_hours=None), t0)
    (job_id,) = fill(engine, settings, "young", NUMBERS[:1])
    # 60 dials in the campaign's first minute, each answered one way or another, in flight included;
    # and 40 requests that placed nothing (no room to send, a 429): not dials.
    results = ["accepted", "unknown", "rejected", None] * 15 + ["retry_safe"] * 40
    with engine.begin() as conn:
        for seq, result in enumerate(results, start=1):
            conn.execute(
                insert(job_store.attempts).values(
                    job_id=job_id, number=1, seq=seq, account="ck", provider="callkaro", result=result,
                    requested_at=t0 + timedelta(seconds=seq % 60),
                )
            )  # fmt: skip
        campaign = campaign_store.by_name(conn, "young")
        assert campaign is not None
        assert ops_store.attempt_buckets(conn, campaign.id, t0, 60) == {0: 60}
        assert ops_store.attempt_span(conn, campaign.id) == (t0, t0 + timedelta(seconds=59))

        a_minute_on = progress.snapshot(conn, campaign, t0 + timedelta(minutes=1), settings)["dial_rate"]
        assert a_minute_on == {"window_minutes": 1.0, "attempts": 60, "per_minute": 60.0, "partial": True}
        two_minutes_on = progress.snapshot(conn, campaign, t0 + timedelta(minutes=2), settings)
        assert two_minutes_on["dial_rate"] == {
            "window_minutes": 2.0,
            "attempts": 60,
            "per_minute": 30.0,
            "partial": True,
        }
        # Once the campaign dialled before the window began, the window is the whole five minutes.
        later = progress.snapshot(conn, campaign, t0 + timedelta(minutes=5, seconds=30), settings)["dial_rate"]
        assert later["partial"] is False and later["window_minutes"] == 5.0
        assert later["attempts"] == 30  # the dials in the second half of the first minute
        assert later["per_minute"] == round(later["attempts"] / 5, 2)
    # The page, on both databases: the chart's count, and the requests without an outcome by answer.
    page = http.get(f"/ui/campaigns/{campaign.id}")
    assert page.status_code == 200, page.text
    assert "60 calls; peak 60.0 calls per minute." in page.text
    assert "<td>retry_safe</td><td>40</td>" in page.text and "<td>in_flight</td><td>15</td>" in page.text
    with engine.connect() as conn:
        # Nothing dialled yet: no rate, over the whole window.
        none_yet = progress.dial_rate(progress_store.RecentDials(0, None, False), t0)
        assert none_yet == {"window_minutes": 5.0, "attempts": 0, "per_minute": 0.0, "partial": False}
