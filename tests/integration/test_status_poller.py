"""The status poller: outcomes whose webhook never came are looked up and applied once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import Engine

from outdial.scheduler.loop import Scheduler
from outdial.scheduler.poller import StatusPoller
from outdial.services import providers
from outdial.services.providers.accounts import Account, load_accounts
from outdial.services.providers.base import CallEvent, Outcome
from outdial.services.providers.callkaro import CallKaro
from outdial.settings import Settings
from outdial.store import jobs as job_store
from tests.integration.conftest import accepted_call

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


class LookupCallKaro(CallKaro):
    """CallKaro with a status API, to exercise the poller without depending on another adapter."""

    name = "lookup-ck"

    def build_status_request(self, account: Account, provider_call_id: str) -> httpx.Request:
        return httpx.Request("GET", account.url(f"/status/{provider_call_id}"))

    def parse_status(
        self, provider_call_id: str, response: httpx.Response, account: Account | None = None
    ) -> CallEvent | None:
        body = response.json()
        outcome = {"done": Outcome.COMPLETED, "busy": Outcome.BUSY}.get(body["status"])
        return CallEvent(provider_call_id, f"{provider_call_id}:{body['status']}", body["status"], outcome)


@pytest.fixture
def lookup_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setitem(providers.adapters(), "lookup-ck", LookupCallKaro())
    text = settings.accounts_file.read_text().replace('provider = "callkaro"', 'provider = "lookup-ck"')
    settings.accounts_file.write_text(text)
    return settings


def accepted_job(engine: Engine, settings: Settings, retries: int = 0) -> int:
    return accepted_call(engine, settings, NOW, number_of_retries=retries)


def poller(engine: Engine, settings: Settings) -> StatusPoller:
    return StatusPoller(engine, settings, load_accounts(settings.accounts_file), httpx.Client())


@respx.mock
def test_a_call_without_webhook_is_looked_up_after_the_wait(engine: Engine, lookup_settings: Settings) -> None:
    job_id = accepted_job(engine, lookup_settings)
    status = respx.get("http://callkaro.test/status/c1").mock(return_value=httpx.Response(200, json={"status": "done"}))
    assert poller(engine, lookup_settings).poll(NOW + timedelta(seconds=10)) == 0  # too early to ask
    assert status.call_count == 0
    later = NOW + timedelta(seconds=lookup_settings.poll_after_s + 1)
    assert poller(engine, lookup_settings).poll(later) == 1
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        attempt = job_store.attempts_of(conn, job_id)[0]
    assert job is not None and job.state == "completed"
    assert attempt.outcome == "completed" and attempt.raw_status == "done"
    # Asked again later, nothing changes and nothing is applied twice.
    assert poller(engine, lookup_settings).poll(later + timedelta(hours=1)) == 0


@respx.mock
def test_unknown_job_with_a_call_id_is_reconciled(engine: Engine, lookup_settings: Settings) -> None:
    job_id = accepted_job(engine, lookup_settings, retries=1)
    late = NOW + timedelta(seconds=lookup_settings.accepted_lease_s + 1)
    Scheduler(engine, lookup_settings, lambda _: None).tick(late)  # no outcome in time: unknown
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == "unknown"
    respx.get("http://callkaro.test/status/c1").mock(return_value=httpx.Response(200, json={"status": "busy"}))
    assert poller(engine, lookup_settings).poll(late) == 1
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    # Busy uses a retry, as it would have had the webhook come.
    assert job is not None and job.state == "scheduled" and job.last_outcome == "busy"


@respx.mock
def test_an_unanswered_look_up_changes_nothing(engine: Engine, lookup_settings: Settings) -> None:
    job_id = accepted_job(engine, lookup_settings)
    respx.get("http://callkaro.test/status/c1").mock(side_effect=httpx.ConnectError("down"))
    later = NOW + timedelta(seconds=lookup_settings.poll_after_s + 1)
    assert poller(engine, lookup_settings).poll(later) == 0
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == "accepted"
    assert json.dumps(job.variables) == "{}"


class TwoStepCallKaro(LookupCallKaro):
    """A provider whose first look-up only names the call to look up next (as NLPearl's does)."""

    name = "two-step-ck"

    def status_follow_up(self, account: Account, provider_call_id: str, response: httpx.Response) -> httpx.Request:
        return httpx.Request("GET", account.url(f"/calls/{response.json()['call']}"))


@respx.mock
def test_a_follow_up_look_up_is_made_when_the_first_names_one(
    engine: Engine, lookup_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(providers.adapters(), "lookup-ck", TwoStepCallKaro())
    job_id = accepted_job(engine, lookup_settings)
    respx.get("http://callkaro.test/status/c1").mock(return_value=httpx.Response(200, json={"call": "k9"}))
    respx.get("http://callkaro.test/calls/k9").mock(return_value=httpx.Response(200, json={"status": "done"}))
    assert poller(engine, lookup_settings).poll(NOW + timedelta(seconds=lookup_settings.poll_after_s + 1)) == 1
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == "completed"
