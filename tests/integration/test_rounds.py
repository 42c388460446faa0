"""Recurring campaigns: each cron fire gives every lead whose last round ended a new job with a fresh budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, select, update

from outdial.errors import InputError
from outdial.models import Job, JobState
from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.rounds import Rounds, next_fire
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import table

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
NINE_NY_NEXT_DAY = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


def jobs_by_lead(engine: Engine) -> dict[int, list[tuple[int, str]]]:
    jobs = table(Job)
    out: dict[int, list[tuple[int, str]]] = {}
    with engine.connect() as conn:
        for lead_id, rnd, state in conn.execute(select(jobs.c.lead_id, jobs.c.round, jobs.c.state).order_by(jobs.c.id)):
            out.setdefault(lead_id, []).append((rnd, state))
    return out


def finish(conn: Connection, job_id: int, state: JobState) -> None:
    """Set up a job that ended in ``state`` (test data: not a walk through the state machine)."""
    conn.execute(update(table(Job)).where(table(Job).c.id == job_id).values(state=state))


def test_a_fire_starts_a_round_for_leads_whose_last_round_ended(engine: Engine, settings: Settings) -> None:
    timing = TimingFields(timezone="America/New_York", callee_hours=None)
    campaign_id = create_campaign(engine, settings, "daily", "ck", timing, NOW, cron="0 9 * * *")
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    assert campaign is not None and campaign.next_round_at == NINE_NY_NEXT_DAY
    add_leads(engine, settings, campaign, [LeadIn(f"+1212555{4000 + i:04d}") for i in range(3)], NOW)
    first = sorted(jobs_by_lead(engine))
    with engine.begin() as conn:  # lead 1 done, lead 2 still in flight, lead 3 expired
        for lead_id, state in zip(first, [JobState.COMPLETED, None, JobState.EXPIRED], strict=True):
            job_id = conn.execute(select(table(Job).c.id).where(table(Job).c.lead_id == lead_id)).scalar_one()
            if state:
                finish(conn, job_id, state)

    assert Rounds(engine, settings).start_due(NINE_NY_NEXT_DAY - timedelta(seconds=1)) == 0  # not yet
    assert Rounds(engine, settings).start_due(NINE_NY_NEXT_DAY) == 2
    assert Rounds(engine, settings).start_due(NINE_NY_NEXT_DAY) == 0  # a second scheduler starts nothing
    jobs = jobs_by_lead(engine)
    assert jobs[first[0]] == [(1, "completed"), (2, "scheduled")]
    assert jobs[first[1]] == [(1, "scheduled")]
    assert jobs[first[2]] == [(1, "expired"), (2, "scheduled")]
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    assert campaign is not None and campaign.round == 2
    assert campaign.next_round_at == NINE_NY_NEXT_DAY + timedelta(days=1)


def test_the_scheduler_starts_rounds_on_its_tick(engine: Engine, settings: Settings) -> None:
    campaign_id = create_campaign(
        engine, settings, "hourly", "ck", TimingFields(callee_hours=None), NOW, cron="0 * * * *"
    )
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    assert campaign is not None
    add_leads(engine, settings, campaign, [LeadIn("+12125554100")], NOW)
    with engine.begin() as conn:
        (job_id,) = conn.execute(select(table(Job).c.id)).scalars()
        finish(conn, job_id, JobState.COMPLETED)
    sent: list[int] = []
    scheduler = Scheduler(engine, settings, sent.append, rounds=Rounds(engine, settings))
    report = scheduler.tick(NOW + timedelta(hours=1))
    assert report.round_jobs == 1 and len(sent) == 1  # the new round's job is due at once


def test_a_bad_cron_is_refused_naming_the_field(engine: Engine, settings: Settings) -> None:
    with pytest.raises(InputError, match=r"^cron:"):
        create_campaign(engine, settings, "bad", "ck", TimingFields(), NOW, cron="every tuesday")


def test_cron_is_read_in_the_campaign_zone_across_dst() -> None:
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    # 09:00 New York is 14:00 UTC in winter and 13:00 UTC after the March change.
    assert next_fire("0 9 * * *", datetime(2026, 3, 7, 15, 0, tzinfo=UTC), ny) == datetime(
        2026, 3, 8, 13, 0, tzinfo=UTC
    )
