"""One campaign life cycle behind every face: the service, the CLI, the HTTP API and the Celery tasks
pause, resume and cancel alike, and refuse alike (404/409, exit 1, a failed task)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.cli import app as cli_app
from outdial.errors import Conflict, InputError, NotFound
from outdial.models import CampaignState, JobState
from outdial.services import campaigns
from outdial.services.campaigns import CampaignBody, LeadIn, add_leads, create_campaign
from outdial.services.providers.accounts import load_accounts
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings, reset_settings
from outdial.store import breakers as breaker_store
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.worker import campaign_tasks

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _campaign_with_leads(engine: Engine, settings: Settings, name: str = "winter", leads: int = 3) -> int:
    campaign_id = create_campaign(engine, settings, name, "ck", TimingFields(callee_hours=None), NOW)
    with engine.connect() as conn:
        row = campaign_store.by_id(conn, campaign_id)
    assert row is not None
    add_leads(engine, settings, row, [LeadIn(phone=f"+1212555{4000 + i:04d}") for i in range(leads)], NOW)
    return campaign_id


def _state(engine: Engine, campaign_id: int) -> str | None:
    with engine.connect() as conn:
        return campaign_store.campaign_state(conn, campaign_id)


def test_the_service_moves_a_campaign_through_its_life(engine: Engine, settings: Settings) -> None:
    campaign_id = _campaign_with_leads(engine, settings)
    paused = campaigns.pause(engine, "winter", NOW, "holiday")
    assert (paused.state, paused.changed) == (CampaignState.PAUSED, True)
    assert campaigns.pause(engine, "winter", NOW, "again").changed is False  # a no-op, not an error
    with engine.connect() as conn:
        row = campaign_store.by_id(conn, campaign_id)
    assert row is not None and row.pause_reason == "holiday"
    resumed = campaigns.resume(engine, "winter", NOW)
    assert (resumed.state, resumed.changed) == (CampaignState.ACTIVE, True)
    cancelled = campaigns.cancel(engine, "winter", NOW, "done")
    assert (cancelled.state, cancelled.changed, cancelled.cancelled_jobs) == (CampaignState.CANCELLED, True, 3)
    with engine.connect() as conn:
        assert job_store.counts_by_state(conn, campaign_id) == {JobState.CANCELLED.value: 3}
    with pytest.raises(Conflict, match="cancelled"):
        campaigns.resume(engine, "winter", NOW)
    with pytest.raises(Conflict, match="only an active or completed campaign"):
        campaigns.pause(engine, "winter", NOW, "late")
    assert campaigns.cancel(engine, "winter", NOW, "twice").changed is False
    with pytest.raises(NotFound, match="'nope'"):
        campaigns.pause(engine, "nope", NOW, "x")


def test_resume_closes_the_breaker_that_paused_the_campaign(engine: Engine, settings: Settings) -> None:
    campaign_id = _campaign_with_leads(engine, settings, leads=0)
    with engine.begin() as conn:
        assert campaigns.breaker_pause(conn, campaign_id, NOW, "circuit breaker: 4 of 4 failed")
        breaker_store.trip(conn, "campaign", str(campaign_id), "circuit breaker", NOW)
    campaigns.resume(engine, "winter", NOW + timedelta(seconds=1))
    with engine.connect() as conn:
        open_ones = [b for b in breaker_store.all_breakers(conn) if b.open]
    assert open_ones == [] and _state(engine, campaign_id) == CampaignState.ACTIVE


def test_the_breaker_does_not_pause_a_cancelled_campaign(engine: Engine, settings: Settings) -> None:
    campaign_id = _campaign_with_leads(engine, settings, leads=0)
    campaigns.cancel(engine, "winter", NOW, "done")
    with engine.begin() as conn:
        assert not campaigns.breaker_pause(conn, campaign_id, NOW, "circuit breaker")
    assert _state(engine, campaign_id) == CampaignState.CANCELLED


def test_create_checks_the_account_and_the_name(engine: Engine, settings: Settings) -> None:
    accounts = load_accounts(settings.accounts_file)
    row = campaigns.create(engine, settings, accounts, CampaignBody(name="a", account="ck"), NOW)
    assert row.name == "a" and row.state == CampaignState.ACTIVE
    with pytest.raises(Conflict, match="exists already"):
        campaigns.create(engine, settings, accounts, CampaignBody(name="a", account="ck"), NOW)
    with pytest.raises(InputError) as refused:
        campaigns.create(engine, settings, accounts, CampaignBody(name="b", account="nope"), NOW)
    assert refused.value.field == "account" and "nope" in refused.value.reason


@pytest.fixture
def cli(db_url: str, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", db_url)
    monkeypatch.setenv("OUTDIAL_ACCOUNTS_FILE", str(settings.accounts_file))
    monkeypatch.setenv("OUTDIAL_DATA_DIR", str(settings.data_dir))
    reset_settings()
    yield CliRunner()
    reset_settings()


def test_the_cli_pauses_resumes_and_cancels(cli: CliRunner, engine: Engine, settings: Settings) -> None:
    campaign_id = _campaign_with_leads(engine, settings)
    paused = cli.invoke(cli_app, ["campaign", "pause", "winter", "--reason", "audit", "--json"])
    assert paused.exit_code == 0, paused.output
    assert json.loads(paused.stdout) == {"campaign": "winter", "state": "paused", "changed": True, "cancelled_jobs": 0}
    assert "is now active" in cli.invoke(cli_app, ["campaign", "resume", "winter"]).stdout
    cancelled = cli.invoke(cli_app, ["campaign", "cancel", "winter"])
    assert cancelled.exit_code == 0 and "3 jobs cancelled" in cancelled.stdout
    assert _state(engine, campaign_id) == CampaignState.CANCELLED
    # Refusals: one line on stderr; 1 for a state that forbids it or a missing campaign.
    for args, says in ((["resume", "winter"], "stays cancelled"), (["pause", "ghost"], "no campaign named 'ghost'")):
        refused = cli.invoke(cli_app, ["campaign", *args])
        assert refused.exit_code == 1, refused.output
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()] and says in refused.stderr
        assert "Traceback" not in refused.output


def test_the_api_answers_404_and_409_from_the_same_service(engine: Engine, settings: Settings) -> None:
    _campaign_with_leads(engine, settings)
    http = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    http.headers["Authorization"] = f"Bearer {create_key(engine, 'tests', NOW)}"
    assert http.post("/campaigns/ghost/pause").status_code == 404
    assert http.post("/campaigns/winter/cancel").json()["cancelled_jobs"] == 3
    refused = http.post("/campaigns/winter/resume")
    assert refused.status_code == 409 and "stays cancelled" in refused.json()["detail"]
    duplicate = http.post("/campaigns", json={"name": "winter", "account": "ck"})
    assert duplicate.status_code == 409


def test_the_celery_tasks_drive_the_same_life_cycle(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = _campaign_with_leads(engine, settings)
    monkeypatch.setattr(campaign_tasks, "get_engine", lambda: engine)
    paused = campaign_tasks.pause_campaign.apply(kwargs={"name": "winter"})
    assert paused.successful() and paused.result["state"] == "paused"
    assert campaign_tasks.resume_campaign.apply(kwargs={"name": "winter"}).result["changed"] is True
    assert campaign_tasks.cancel_campaign.apply(kwargs={"name": "winter"}).result["cancelled_jobs"] == 3
    assert _state(engine, campaign_id) == CampaignState.CANCELLED
    refused = campaign_tasks.resume_campaign.apply(kwargs={"name": "winter"})
    assert refused.failed() and isinstance(refused.result, Conflict)
    assert campaign_tasks.resume_campaign.throws == (campaign_tasks.OutdialError,)
