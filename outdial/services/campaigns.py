"""Campaigns, and their leads becoming jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from outdial.models import CampaignState
from outdial.services.intake.enqueue import job_values
from outdial.services.timing.admit import merge_layers
from outdial.services.timing.spec import SpecError, TimingFields, compile_rules
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import dnc as dnc_store
from outdial.store import jobs as job_store


class CampaignError(ValueError):
    pass


def create_campaign(
    engine: Engine,
    settings: Settings,
    name: str,
    account: str,
    timing: TimingFields,
    now: datetime,
    retry_on: Sequence[str] | None = None,
    cron: str | None = None,
    calls_per_minute: int | None = None,
) -> int:
    if retry_on is not None:
        unknown = set(retry_on) - {"completed", "no_answer", "busy", "voicemail", "failed"}
        if unknown:
            raise CampaignError(f"retry_on: unknown outcomes {sorted(unknown)}")
    next_round_at = None
    if cron is not None:
        from outdial.services.rounds import campaign_zone, next_fire, valid_cron

        if not valid_cron(cron):
            raise CampaignError(f"cron: {cron!r} is not a cron expression")
        try:
            next_round_at = next_fire(cron, now, campaign_zone(timing.given(), settings))
        except ValueError:
            # Valid syntax that never fires (say 31 February): croniter gives up searching.
            raise CampaignError(f"cron: {cron!r} never fires (no such date)") from None
    with engine.begin() as conn:
        if campaign_store.by_name(conn, name) is not None:
            raise CampaignError(f"name: a campaign named {name!r} already exists")
        return campaign_store.create(
            conn,
            {
                "name": name,
                "account": account,
                "state": CampaignState.ACTIVE,
                "timing": timing.given(),
                "retry_on": list(retry_on) if retry_on is not None else list(settings.retry_on),
                "cron": cron,
                "next_round_at": next_round_at,
                "calls_per_minute": calls_per_minute,
                "created_at": now,
                "updated_at": now,
            },
        )


@dataclass(frozen=True)
class LeadIn:
    """One lead, already validated: an E.164 number, its variables and its timing overrides."""

    phone: str
    variables: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    source_row: int | None = None


@dataclass
class LeadsAdded:
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    # (source row, reason) of leads whose timing can never be valid.
    rejected: list[tuple[int | None, str]] = field(default_factory=list)


def add_leads(
    engine: Engine, settings: Settings, campaign: AnyRow, leads: Sequence[LeadIn], now: datetime
) -> LeadsAdded:
    """Store new leads and their round's jobs; numbers already in the campaign are counted, not added."""
    result = LeadsAdded()
    with engine.begin() as conn:
        seen = campaign_store.existing_phones(conn, campaign.id, [lead.phone for lead in leads])
        blocked = dnc_store.listed(conn, [lead.phone for lead in leads])
        fresh: list[LeadIn] = []
        for lead in leads:
            if lead.phone in seen:
                result.duplicates += 1
                continue
            seen.add(lead.phone)
            if lead.phone in blocked:
                result.suppressed += 1
                continue
            fields = merge_layers(campaign.timing, lead.timing)
            try:
                compile_rules(fields, lead.phone, default_timezone=settings.default_timezone)
            except SpecError as exc:
                result.rejected.append((lead.source_row, str(exc)))
                continue
            fresh.append(lead)
        ids = campaign_store.insert_leads(
            conn,
            [
                {
                    "campaign_id": campaign.id,
                    "phone": lead.phone,
                    "variables": lead.variables,
                    "timing": lead.timing,
                    "source_row": lead.source_row,
                    "created_at": now,
                }
                for lead in fresh
            ],
        )
        for lead_id, lead in zip(ids, fresh, strict=True):
            job_store.insert_job(
                conn,
                job_values(
                    account=campaign.account,
                    to_number=lead.phone,
                    fields=merge_layers(campaign.timing, lead.timing),
                    variables=lead.variables,
                    options={},
                    retry_on=campaign.retry_on,
                    now=now,
                    settings=settings,
                    campaign_id=campaign.id,
                    lead_id=lead_id,
                    round=campaign.round,
                ),
            )
        result.accepted = len(fresh)
    return result
