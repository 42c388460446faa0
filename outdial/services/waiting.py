"""Why a campaign is not dialling, and when its next call is due: one answer for the campaign
page, ``outdial status``, ``outdial campaign show`` and ``GET /campaigns/{name}/status``.

The reasons are checked in the order an operator would fix them: the campaign's own
state (cancelled, completed, paused, by whom), an open circuit breaker, then its jobs
(nothing scheduled, the calling window closed until when, nothing due yet, due but
held by pacing). Times are given in the zone the next job is called in and in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from outdial.models import ACTIVE_STATES, CampaignState, JobState
from outdial.services.rounds import campaign_zone
from outdial.services.timing.rules import Due, next_window
from outdial.services.timing.spec import SpecError, rules_for
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import jobs as job_store
from outdial.store import progress as progress_store

IN_FLIGHT = {JobState.QUEUED, JobState.DIALING, JobState.ACCEPTED}
_BREAKER_PREFIX = "circuit breaker"


class Why(StrEnum):
    DIALLING = "dialling"
    PAUSED = "paused"
    BREAKER = "breaker_open"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_JOBS = "no_jobs"
    NOTHING_SCHEDULED = "nothing_scheduled"
    WINDOW_CLOSED = "window_closed"
    NOT_DUE = "nothing_due"
    PACING = "pacing"


@dataclass(frozen=True)
class Explanation:
    why: Why
    text: str  # one line for a person
    zone: str  # the zone next_due is shown in
    next_due: datetime | None  # UTC

    @property
    def dialling(self) -> bool:
        return self.why == Why.DIALLING

    @property
    def next_due_local(self) -> datetime | None:
        return self.next_due.astimezone(ZoneInfo(self.zone)) if self.next_due else None

    def as_json(self) -> dict[str, Any]:
        local = self.next_due_local
        return {
            "why": self.why.value,
            "dialling": self.dialling,
            "text": self.text,
            "zone": self.zone,
            "next_due_at": self.next_due.isoformat() if self.next_due else None,
            "next_due_local": local.isoformat() if local else None,
        }


def when(instant: datetime, zone: ZoneInfo) -> str:
    """``2026-12-02 09:00 EST America/New_York (14:00 UTC)``: a time as both people need it."""
    local = instant.astimezone(zone)
    utc = instant.astimezone(UTC)
    same_day = local.date() == utc.date()
    utc_text = utc.strftime("%H:%M UTC") if same_day else utc.strftime("%Y-%m-%d %H:%M UTC")
    if zone.key == "UTC":
        return utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"{local.strftime('%Y-%m-%d %H:%M %Z')} {zone.key} ({utc_text})"


def _job_zone(job: AnyRow, settings: Settings, fallback: ZoneInfo) -> ZoneInfo:
    try:
        zones = rules_for(job.timing, job.to_number, settings).zones
    except SpecError:
        return fallback
    return zones[0] if len(zones) == 1 else fallback


def explain(conn: Connection, campaign: AnyRow, now: datetime, settings: Settings) -> Explanation:
    """Why the campaign is (not) dialling now, and when its next call is due."""
    zone = campaign_zone(campaign.timing, settings)
    counts = job_store.counts_by_state(conn, campaign.id)
    in_flight = sum(counts.get(s.value, 0) for s in IN_FLIGHT)
    following = progress_store.next_scheduled(conn, campaign.id)
    next_due = following.next_due_at if following is not None else None
    if following is not None:
        zone = _job_zone(following, settings, zone)
    due_text = f"next call due {when(next_due, zone)}" if next_due else "no call scheduled"

    def say(why: Why, text: str) -> Explanation:
        return Explanation(why, text, zone.key, next_due)

    state = campaign.state
    if state == CampaignState.CANCELLED:
        return say(Why.CANCELLED, f"cancelled: {campaign.pause_reason or 'no reason given'}")
    if state == CampaignState.COMPLETED:
        return say(Why.COMPLETED, "completed: every job has ended")
    if state == CampaignState.PAUSED:
        reason = campaign.pause_reason or "paused"
        why = Why.BREAKER if reason.startswith(_BREAKER_PREFIX) else Why.PAUSED
        resume = "outdial campaign resume" if why == Why.PAUSED else "outdial breaker resume campaign"
        said = reason if reason.startswith("paused") else f"paused ({reason})"
        return say(why, f"{said}; {due_text} once resumed ({resume} {campaign.name!r})")
    account_breaker = progress_store.open_breaker(conn, "account", campaign.account)
    if account_breaker is not None:
        return say(
            Why.BREAKER,
            f"account {campaign.account}'s circuit breaker is open ({account_breaker.reason}); "
            f"outdial breaker resume account {campaign.account}",
        )
    if not sum(counts.values()):
        return say(Why.NO_JOBS, "no leads yet (outdial import)")
    if next_due is None:
        if in_flight:
            return say(Why.DIALLING, f"{in_flight} calls in progress; nothing more scheduled")
        ended = not any(counts.get(s.value, 0) for s in ACTIVE_STATES)
        text = "every job has ended" if ended else "nothing scheduled"
        if campaign.cron and campaign.next_round_at:
            text += f"; next round {when(campaign.next_round_at, zone)}"
        return say(Why.NOTHING_SCHEDULED, text)
    if next_due > now:
        if in_flight:
            return say(Why.DIALLING, f"{in_flight} calls in progress; {due_text}")
        assert following is not None
        window = next_window(rules_for(following.timing, following.to_number, settings), now)
        if isinstance(window, Due) and window.at > now:
            return say(Why.WINDOW_CLOSED, f"calling window closed until {when(window.at, zone)}; {due_text}")
        return say(Why.NOT_DUE, f"nothing due yet (retry gaps or start times); {due_text}")
    due = progress_store.due_count(conn, campaign.id, now)
    if in_flight:
        return say(Why.DIALLING, f"{in_flight} calls in progress, {due} more due now")
    limit = f"the campaign's {campaign.calls_per_minute} calls/min or " if campaign.calls_per_minute else ""
    return say(
        Why.PACING,
        f"{due} calls due now, none in progress: held by pacing ({limit}the account's limits), "
        "or the scheduler is not running (outdial doctor)",
    )
