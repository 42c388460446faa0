"""Read-only queries for watching outdial: metrics at scrape time and the campaign page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, cast, func, select

from outdial.models import Attempt, Breaker, Campaign, CampaignState, Job
from outdial.store import table
from outdial.store.progress import DIALLED, as_utc

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


def attempt_results(conn: Connection, campaign_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """A campaign's attempts two ways: (how the calls ended, by outcome, for those that have one;
    what the provider answered the request, for those that have no outcome yet)."""
    # Grouped by the bare columns: PostgreSQL does not see two bound "in_flight" as one expression.
    query = (
        select(attempts.c.outcome, attempts.c.result, func.count())
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id)
        .group_by(attempts.c.outcome, attempts.c.result)
    )
    outcomes: dict[str, int] = {}
    pending: dict[str, int] = {}
    for outcome, result, n in conn.execute(query):
        if outcome is not None:
            outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + int(n)
        else:
            answer = "in_flight" if result is None else str(result)
            pending[answer] = pending.get(answer, 0) + int(n)
    return outcomes, pending


def attempt_span(conn: Connection, campaign_id: int) -> tuple[datetime, datetime] | None:
    """When the campaign's first and last dials (:data:`~outdial.store.progress.DIALLED`) left;
    None before any."""
    query = (
        select(func.min(attempts.c.requested_at), func.max(attempts.c.requested_at))
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id, DIALLED)
    )
    first, last = conn.execute(query).one()
    if first is None or last is None:
        return None
    # min()/max() skip the column type's conversion on SQLite: read them back as UTC.
    return as_utc(first), as_utc(last)


def attempt_buckets(conn: Connection, campaign_id: int, first: datetime, width_s: int) -> dict[int, int]:
    """The campaign's dials counted per bucket of ``width_s`` seconds from ``first``, grouped
    in the database: every dial counts, however many, and only the counts travel."""
    start = first.astimezone(UTC).timestamp()
    if conn.dialect.name == "sqlite":
        # Stored as naive UTC text; strftime('%s') reads it as whole seconds since the epoch.
        seconds: ColumnElement[Any] = cast(func.strftime("%s", attempts.c.requested_at), Integer)
    else:
        seconds = func.extract("epoch", attempts.c.requested_at)
    index = cast(func.floor((seconds - start) / width_s), Integer).label("bucket")
    query = (
        select(index, func.count())
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id, DIALLED)
        .group_by(index)
    )
    return {int(i): int(n) for i, n in conn.execute(query)}
