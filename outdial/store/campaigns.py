"""Campaigns and their leads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from outdial.models import ACTIVE_STATES, Campaign, CampaignState, Job, Lead
from outdial.store import AnyRow, table

campaigns = table(Campaign)
leads = table(Lead)
jobs = table(Job)


def create(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(campaigns).values(**values).returning(campaigns.c.id)).scalar_one())


def by_name(conn: Connection, name: str) -> AnyRow | None:
    return conn.execute(select(campaigns).where(campaigns.c.name == name)).first()


def by_id(conn: Connection, campaign_id: int) -> AnyRow | None:
    return conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()


def all_campaigns(conn: Connection) -> Sequence[AnyRow]:
    return conn.execute(select(campaigns).order_by(campaigns.c.id)).all()


def campaign_state(conn: Connection, campaign_id: int) -> str | None:
    found = conn.execute(select(campaigns.c.state).where(campaigns.c.id == campaign_id)).scalar()
    return str(found) if found is not None else None


def set_state(
    conn: Connection, campaign_id: int, expected: Sequence[str], new: str, now: datetime, reason: str | None
) -> bool:
    result = conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.state.in_(list(expected)))
        .values(state=new, pause_reason=reason, updated_at=now)
    )
    return result.rowcount == 1


def _has_jobs(*states: str) -> ColumnElement[bool]:
    query = select(jobs.c.id).where(jobs.c.campaign_id == campaigns.c.id)
    if states:
        query = query.where(jobs.c.state.in_(list(states)))
    return query.exists()


_ACTIVE_JOB_STATES = [s.value for s in ACTIVE_STATES]


def complete_finished(conn: Connection, now: datetime) -> list[str]:
    """``active -> completed`` for every campaign that has jobs and none of them still to end;
    the names of those moved. One conditional UPDATE: a job added meanwhile keeps its campaign active."""
    result = conn.execute(
        update(campaigns)
        .where(campaigns.c.state == CampaignState.ACTIVE, _has_jobs(), ~_has_jobs(*_ACTIVE_JOB_STATES))
        .values(state=CampaignState.COMPLETED, pause_reason=None, updated_at=now)
        .returning(campaigns.c.name)
    )
    return [str(r[0]) for r in result]


def reopen(conn: Connection, now: datetime, campaign_id: int | None = None) -> list[str]:
    """``completed -> active`` for a campaign (or every one) that has a job to end again
    (new leads, a new round, a retried job); the names of those moved."""
    query = update(campaigns).where(campaigns.c.state == CampaignState.COMPLETED, _has_jobs(*_ACTIVE_JOB_STATES))
    if campaign_id is not None:
        query = query.where(campaigns.c.id == campaign_id)
    result = conn.execute(query.values(state=CampaignState.ACTIVE, updated_at=now).returning(campaigns.c.name))
    return [str(r[0]) for r in result]


def insert_leads(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert leads; the ids of the new ones (rows are expected to be new)."""
    if not rows:
        return []
    return [int(r[0]) for r in conn.execute(insert(leads).returning(leads.c.id), list(rows))]


def existing_phones(conn: Connection, campaign_id: int, phones: Sequence[str]) -> set[str]:
    if not phones:
        return set()
    query = select(leads.c.phone).where(leads.c.campaign_id == campaign_id, leads.c.phone.in_(list(phones)))
    return {str(r[0]) for r in conn.execute(query)}


def leads_of(conn: Connection, campaign_id: int) -> Sequence[AnyRow]:
    return conn.execute(select(leads).where(leads.c.campaign_id == campaign_id).order_by(leads.c.id)).all()


def due_for_round(conn: Connection, now: datetime) -> Sequence[AnyRow]:
    """Recurring campaigns, active or completed (between rounds), whose next round is due."""
    query = select(campaigns).where(
        campaigns.c.cron.is_not(None),
        campaigns.c.state.in_([CampaignState.ACTIVE, CampaignState.COMPLETED]),
        campaigns.c.next_round_at <= now,
    )
    return conn.execute(query).all()


def advance_round(conn: Connection, campaign_id: int, seen_round: int, next_round_at: datetime, now: datetime) -> bool:
    """Move a campaign to its next round, unless another scheduler already did."""
    result = conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.round == seen_round)
        .values(round=seen_round + 1, next_round_at=next_round_at, updated_at=now)
    )
    return result.rowcount == 1


def leads_without_active_job(conn: Connection, campaign_id: int, after_id: int, limit: int) -> Sequence[AnyRow]:
    """Leads of a campaign, by id after ``after_id``, none of whose jobs is still in flight."""
    in_flight = select(jobs.c.id).where(jobs.c.lead_id == leads.c.id, jobs.c.state.in_(_ACTIVE_JOB_STATES)).exists()
    query = (
        select(leads)
        .where(leads.c.campaign_id == campaign_id, leads.c.id > after_id, ~in_flight)
        .order_by(leads.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def lead_counts(conn: Connection) -> dict[int, int]:
    """Leads per campaign id."""
    query = select(leads.c.campaign_id, func.count()).group_by(leads.c.campaign_id)
    return {int(campaign_id): int(n) for campaign_id, n in conn.execute(query)}
