"""Circuit breakers on both databases: failing accounts and campaigns pause, resume by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import respx
from sqlalchemy import Engine

from outdial.scheduler.loop import Scheduler
from outdial.services.breaker import BreakerCheck, resume
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.dispatch import Dispatcher
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.providers.accounts import load_accounts
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import breakers as breaker_store
from outdial.store import campaigns as campaign_store

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
URL = "http://callkaro.test/call/outbound"


def run_calls(engine: Engine, settings: Settings, ids: list[int], response: httpx.Response, now: datetime) -> None:
    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(now)
    assert sorted(sent) == sorted(ids)
    dispatcher = Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client())
    with respx.mock:
        respx.post(URL).mock(return_value=response)
        for job_id in sent:
            dispatcher.dispatch(job_id, now)


def single_calls(engine: Engine, settings: Settings, n: int, start: int = 0) -> list[int]:
    return [
        enqueue_call(
            engine,
            CallBody(to_number=f"+1212555{2000 + start + i:04d}", account="ck", callee_hours=None),
            NOW,
            settings,
        ).job_id
        for i in range(n)
    ]


def test_failing_account_stops_being_dialled_until_resumed(engine: Engine, settings: Settings) -> None:
    settings = settings.model_copy(update={"breaker_min_calls": 5, "breaker_failure_rate": 0.5})
    failing = single_calls(engine, settings, 6)
    run_calls(engine, settings, failing, httpx.Response(500), NOW)  # 6 of 6 unknown: failures
    assert BreakerCheck(engine, settings).check(NOW) == [("account", "ck")]
    with engine.connect() as conn:
        (row,) = breaker_store.all_breakers(conn)
    assert row.open and "6 of 6" in row.reason

    waiting = single_calls(engine, settings, 2, start=100)
    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(NOW + timedelta(seconds=1))
    assert sent == []  # the account is paused: its due jobs wait, scheduled

    later = NOW + timedelta(seconds=2)
    resume(engine, "account", "ck", later)
    # Failures from before the resume do not trip it again.
    assert BreakerCheck(engine, settings).check(later) == []
    run_calls(engine, settings, waiting, httpx.Response(200, json={"call_sid": "ok"}), later)


def test_failing_campaign_pauses_itself_and_says_why(engine: Engine, settings: Settings) -> None:
    settings = settings.model_copy(update={"breaker_min_calls": 4, "breaker_failure_rate": 0.5})
    campaign_id = create_campaign(engine, settings, "c1", "ck", TimingFields(callee_hours=None), NOW)
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    assert campaign is not None
    leads = [LeadIn(phone=f"+1212555{3000 + i:04d}") for i in range(4)]
    add_leads(engine, settings, campaign, leads, NOW)
    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(NOW)
    dispatcher = Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client())
    with respx.mock:
        respx.post(URL).mock(return_value=httpx.Response(404, json={"message": "Agent does not exist"}))
        for job_id in sent:
            dispatcher.dispatch(job_id, NOW)
    opened = BreakerCheck(engine, settings).check(NOW)
    assert ("campaign", str(campaign_id)) in opened
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    assert campaign is not None and campaign.state == "paused"
    assert campaign.pause_reason is not None and "4 of 4" in campaign.pause_reason
    resume(engine, "campaign", "c1", NOW + timedelta(seconds=1))
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    assert campaign is not None and campaign.state == "active"
