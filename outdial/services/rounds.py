"""Recurring campaigns (SPEC 5 rule 9): each time the campaign's cron fires, every lead gets a new round.

A new round is a new job with a fresh attempt budget. A lead whose previous
round is still in flight is not started again. The round counter is advanced
with a conditional update, so two schedulers never start the same round twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import Engine

from outdial import logs
from outdial.services.intake.enqueue import lead_job_values
from outdial.services.timing.spec import CALLEE, SpecError
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store

log = logging.getLogger("outdial.rounds")
BATCH = 1000


def campaign_zone(timing: dict[str, object], settings: Settings) -> ZoneInfo:
    """The zone a campaign's cron is read in: its own time zone, else the default."""
    name = timing.get("timezone")
    return ZoneInfo(name if isinstance(name, str) and name != CALLEE else settings.default_timezone)


def next_fire(cron: str, after: datetime, zone: ZoneInfo) -> datetime:
    """The first time ``cron`` fires strictly after ``after``, read as wall-clock time in ``zone``."""
    fire: datetime = croniter(cron, after.astimezone(zone)).get_next(datetime)
    return fire.astimezone(UTC)


def valid_cron(cron: str) -> bool:
    return bool(croniter.is_valid(cron))


@dataclass
class Rounds:
    engine: Engine
    settings: Settings

    def start_due(self, now: datetime) -> int:
        """Start the rounds of every recurring campaign whose cron has fired; the jobs created."""
        with self.engine.connect() as conn:
            due = campaign_store.due_for_round(conn, now)
        return sum(self._start(campaign, now) for campaign in due)

    def _start(self, campaign: AnyRow, now: datetime) -> int:
        zone = campaign_zone(campaign.timing, self.settings)
        following = next_fire(campaign.cron, now, zone)
        new_round = campaign.round + 1
        created = 0
        with self.engine.begin() as conn:
            if not campaign_store.advance_round(conn, campaign.id, campaign.round, following, now):
                return 0  # another scheduler started this round
            after_id = 0
            while leads := campaign_store.leads_without_active_job(conn, campaign.id, after_id, BATCH):
                for lead in leads:
                    try:
                        values = lead_job_values(
                            campaign, lead.id, lead.phone, lead.timing, lead.variables, new_round, now, self.settings
                        )
                    except SpecError as exc:  # validated at import; only a changed setting gets here
                        log.warning("lead not started: %s", exc, extra=logs.fields(campaign_id=campaign.id))
                        continue
                    job_store.insert_job(conn, values)
                    created += 1
                after_id = leads[-1].id
            if created:
                campaign_store.reopen(conn, now, campaign.id)  # a completed campaign between rounds
        log.info("round %d started with %d jobs", new_round, created, extra=logs.fields(campaign_id=campaign.id))
        return created
