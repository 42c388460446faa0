"""Campaigns and their leads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from outdial.models import Campaign, Job, Lead
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
    """Active recurring campaigns whose next round is due."""
    query = select(campaigns).where(
        campaigns.c.cron.is_not(None),
        campaigns.c.state == "active",
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
    in_flight = (
        select(jobs.c.id)
        .where(jobs.c.lead_id == leads.c.id, jobs.c.state.in_(["scheduled", "queued", "dialing", "accepted"]))
        .exists()
    )
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
