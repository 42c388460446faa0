"""Read-only queries for watching outdial: metrics at scrape time and the campaign page."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from outdial.models import Attempt, Breaker, Campaign, CampaignState, Job
from outdial.store import table

jobs = table(Job)
campaigns = table(Campaign)
attempts = table(Attempt)
breakers = table(Breaker)


def open_breakers_by_scope(conn: Connection) -> dict[str, int]:
    query = select(breakers.c.scope, func.count()).where(breakers.c.open.is_(True)).group_by(breakers.c.scope)
    return {str(scope): int(n) for scope, n in conn.execute(query)}


def counts_by_campaign_and_state(conn: Connection) -> dict[int, dict[str, int]]:
    """Jobs per state of every campaign, in one query (the page lists them all)."""
    query = (
        select(jobs.c.campaign_id, jobs.c.state, func.count())
        .where(jobs.c.campaign_id.is_not(None))
        .group_by(jobs.c.campaign_id, jobs.c.state)
    )
    found: dict[int, dict[str, int]] = {}
    for campaign_id, state, n in conn.execute(query):
        found.setdefault(int(campaign_id), {})[str(state)] = int(n)
    return found


def live_campaign_counts(conn: Connection) -> dict[str, tuple[str, dict[str, int]]]:
    """Campaigns not yet ended (active or paused): name -> (state, jobs per state)."""
    live = [CampaignState.ACTIVE, CampaignState.PAUSED]
    found: dict[str, tuple[str, dict[str, int]]] = {
        str(name): (str(state), {})
        for name, state in conn.execute(select(campaigns.c.name, campaigns.c.state).where(campaigns.c.state.in_(live)))
    }
    query = (
        select(campaigns.c.name, jobs.c.state, func.count())
        .select_from(jobs.join(campaigns, campaigns.c.id == jobs.c.campaign_id))
        .where(campaigns.c.state.in_(live))
        .group_by(campaigns.c.name, jobs.c.state)
    )
    for name, state, n in conn.execute(query):
        if str(name) in found:
            found[str(name)][1][str(state)] = int(n)
    return found


def attempt_outcomes(conn: Connection, campaign_id: int) -> dict[str, int]:
    """A campaign's attempts by how they ended: the call's outcome, else the request's result."""
    label = func.coalesce(attempts.c.outcome, attempts.c.result, "in_flight")
    query = (
        select(label, func.count())
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id)
        .group_by(label)
    )
    return {str(k): int(n) for k, n in conn.execute(query)}


def attempt_times(conn: Connection, campaign_id: int, limit: int = 200_000) -> Sequence[datetime]:
    """When each of a campaign's requests left, oldest first (the dial-rate chart buckets them)."""
    query = (
        select(attempts.c.requested_at)
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id)
        .order_by(attempts.c.requested_at)
        .limit(limit)
    )
    return [t for (t,) in conn.execute(query)]
