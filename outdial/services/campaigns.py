"""The campaign life cycle, in one place for every face (HTTP API, CLI, Celery task, breaker):
create, pause, resume, cancel; and a campaign's leads becoming jobs.

A campaign's states and the moves between them::

    (created) --> active | paused                 (``state: paused``: nothing dials until resumed)
    active --pause--> paused --resume--> active
    active --every job ended--> completed --new leads, round or retried job--> active
    active | paused | completed --cancel--> cancelled  (its jobs not yet handed to a worker end too)
    active --breaker--> paused                    (the breaker's reason is kept; resume closes it)

``completed`` is set by the scheduler's periodic pass (:func:`settle_completion`), one
conditional UPDATE for all campaigns, so no worker path has to ask "was that the last job?".

Every move is a conditional UPDATE on the state that was seen, so two operators, or an
operator and the breaker, cannot undo each other's change unseen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from outdial.errors import Conflict, InputError, NotFound
from outdial.models import CampaignState
from outdial.services.intake.enqueue import lead_job_values, unknown_account
from outdial.services.requests import CampaignName
from outdial.services.rounds import campaign_zone, next_fire, valid_cron
from outdial.services.timing.admit import merge_layers
from outdial.services.timing.spec import TIMING_EXAMPLE, SpecError, TimingFields, compile_rules
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import breakers as breaker_store
from outdial.store import campaigns as campaign_store
from outdial.store import dnc as dnc_store
from outdial.store import jobs as job_store
from outdial.vocab import Outcome, listed

# Where each move may start from.
MOVES_FROM: dict[CampaignState, tuple[CampaignState, ...]] = {
    # A completed campaign may be paused so that leads added to it wait.
    CampaignState.PAUSED: (CampaignState.ACTIVE, CampaignState.COMPLETED),
    CampaignState.ACTIVE: (CampaignState.PAUSED,),
    CampaignState.CANCELLED: (CampaignState.ACTIVE, CampaignState.PAUSED, CampaignState.COMPLETED),
}
# The states a campaign may be created in.
CreatedState = Literal[CampaignState.ACTIVE, CampaignState.PAUSED]
# Any valid number will do to check the rules that do not depend on the number (min == max and the like).
_EXAMPLE_NUMBER = "+12125550100"


class CampaignBody(TimingFields):
    """A new campaign, as every face takes it: its name, the account it dials through, and
    its SPEC 5 timing fields (the lowest layer of every lead's and job's)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "dental-reminders-dec",
                    "account": "sim-callkaro",
                    **TIMING_EXAMPLE,
                    "retry_on": ["no_answer", "busy", "failed"],
                    "calls_per_minute": 60,
                },
                {
                    "name": "renewals-weekly",
                    "account": "sim-callkaro",
                    "timezone": "Asia/Kolkata",
                    "min_trigger_time": "10:00",
                    "max_trigger_time": "19:00",
                    "cron": "0 10 * * 1",
                    "state": "paused",
                },
            ]
        },
    )

    name: CampaignName = Field(description="Unique among campaigns; no slash.", examples=["dental-reminders-dec"])
    account: str = Field(
        min_length=1, max_length=100, description="An account of the accounts file.", examples=["sim-callkaro"]
    )
    retry_on: list[str] | None = Field(
        default=None,
        description=f"Outcomes that use a retry; any of {listed(Outcome)}. Absent: the setting's.",
        examples=[["no_answer", "busy", "failed"]],
    )
    cron: str | None = Field(
        default=None,
        max_length=100,
        description="Recurring rounds: a cron expression in the campaign's zone.",
        examples=["0 10 * * 1"],
    )
    calls_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="The campaign's pacing (the account's limits hold too).",
        examples=[60],
    )
    state: CreatedState = Field(
        default=CampaignState.ACTIVE,
        description="`paused` creates it paused: leads can be imported and checked before anything dials.",
    )

    @field_validator("retry_on")
    @classmethod
    def _known_outcomes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (unknown := set(value) - set(Outcome)):
            raise ValueError(f"unknown outcomes {sorted(unknown)}; known: {', '.join(Outcome)}")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not valid_cron(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value

    def timing(self) -> TimingFields:
        """The campaign's timing layer: the SPEC 5 fields given here, and only those."""
        given = self.given()
        return TimingFields.model_validate({k: v for k, v in given.items() if k in TimingFields.model_fields})


@dataclass(frozen=True)
class CampaignChange:
    """What a life-cycle command did: the campaign's state after it, and whether it moved."""

    campaign: str
    state: CampaignState
    changed: bool
    cancelled_jobs: int = 0


def campaign_view(row: AnyRow) -> dict[str, Any]:
    """A campaign's settings and state as every face shows them (``GET /campaigns``, ``outdial campaign
    list --json``). Times stay datetimes: each face writes them out its own way."""
    return {
        "id": row.id,
        "name": row.name,
        "account": row.account,
        "state": row.state,
        "pause_reason": row.pause_reason,
        "timing": row.timing,
        "retry_on": row.retry_on,
        "cron": row.cron,
        "round": row.round,
        "next_round_at": row.next_round_at,
        "calls_per_minute": row.calls_per_minute,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def find(conn: Connection, name: str) -> AnyRow:
    found = campaign_store.by_name(conn, name)
    if found is None:
        raise NotFound(f"no campaign named {name!r}")
    return found


def create(
    engine: Engine,
    settings: Settings,
    accounts: Mapping[str, Any],
    body: CampaignBody,
    now: datetime,
    who: str = "unknown",
) -> AnyRow:
    """Make the campaign ``body`` describes, on one of ``accounts``; ``who`` is named if it starts paused."""
    if problem := unknown_account(body.account, accounts):
        raise InputError(problem, field="account")
    timing = body.timing()
    try:
        compile_rules(timing, _EXAMPLE_NUMBER, default_timezone=settings.default_timezone)
    except SpecError as exc:
        if exc.field != "to_number":
            raise
    campaign_id = create_campaign(
        engine,
        settings,
        body.name,
        body.account,
        timing,
        now,
        body.retry_on,
        body.cron,
        body.calls_per_minute,
        state=CampaignState(body.state),
        pause_reason=f"created paused by {who}" if body.state == CampaignState.PAUSED else None,
    )
    with engine.connect() as conn:
        row = campaign_store.by_id(conn, campaign_id)
    assert row is not None
    return row


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
    *,
    state: CampaignState = CampaignState.ACTIVE,
    pause_reason: str | None = None,
) -> int:
    """Store a new campaign; its id. Raises :class:`Conflict` when the name is taken."""
    if retry_on is not None and (unknown := set(retry_on) - set(Outcome)):
        raise InputError(f"unknown outcomes {sorted(unknown)}", field="retry_on")
    next_round_at = None
    if cron is not None:
        if not valid_cron(cron):
            raise InputError(f"{cron!r} is not a cron expression", field="cron")
        try:
            next_round_at = next_fire(cron, now, campaign_zone(timing.given(), settings))
        except ValueError:
            # Valid syntax that never fires (say 31 February): croniter gives up searching.
            raise InputError(f"{cron!r} never fires (no such date)", field="cron") from None
    taken = Conflict(f"a campaign named {name!r} exists already")
    try:
        with engine.begin() as conn:
            if campaign_store.by_name(conn, name) is not None:
                raise taken
            return campaign_store.create(
                conn,
                {
                    "name": name,
                    "account": account,
                    "state": state,
                    "pause_reason": pause_reason,
                    "timing": timing.given(),
                    "retry_on": list(retry_on) if retry_on is not None else list(settings.retry_on),
                    "cron": cron,
                    "next_round_at": next_round_at,
                    "calls_per_minute": calls_per_minute,
                    "created_at": now,
                    "updated_at": now,
                },
            )
    except IntegrityError:
        raise taken from None  # another request made the same name between the check and the insert


def _state_of(conn: Connection, campaign_id: int) -> CampaignState:
    return CampaignState(str(campaign_store.campaign_state(conn, campaign_id)))


def _move(conn: Connection, campaign: AnyRow, to: CampaignState, now: datetime, reason: str | None) -> bool:
    return campaign_store.set_state(conn, campaign.id, list(MOVES_FROM[to]), to, now, reason)


def pause(engine: Engine, name: str, now: datetime, reason: str) -> CampaignChange:
    """Stop dialling the campaign's jobs (calls already placed finish). Pausing a paused campaign changes nothing."""
    with engine.begin() as conn:
        campaign = find(conn, name)
        moved = _move(conn, campaign, CampaignState.PAUSED, now, reason)
        state = _state_of(conn, campaign.id)
    if not moved and state != CampaignState.PAUSED:
        raise Conflict(f"campaign {name!r} is {state}; only an active or completed campaign can be paused")
    return CampaignChange(name, state, moved)


def resume(engine: Engine, name: str, now: datetime) -> CampaignChange:
    """Dial again. A campaign its circuit breaker paused has the breaker closed too."""
    with engine.begin() as conn:
        campaign = find(conn, name)
        if campaign.state == CampaignState.CANCELLED:
            raise Conflict(f"campaign {name!r} is cancelled; a cancelled campaign stays cancelled")
        moved = _move(conn, campaign, CampaignState.ACTIVE, now, None)
        if moved:
            breaker_store.reset(conn, "campaign", str(campaign.id), now)
        state = _state_of(conn, campaign.id)
    return CampaignChange(name, state, moved)


def cancel(engine: Engine, name: str, now: datetime, reason: str) -> CampaignChange:
    """End the campaign: every job not yet handed to a worker becomes ``cancelled``.

    Calls already being dialled finish (the worker re-checks the campaign before each
    dial). Cancelling a cancelled campaign changes nothing.
    """
    with engine.begin() as conn:
        campaign = find(conn, name)
        moved = _move(conn, campaign, CampaignState.CANCELLED, now, reason)
        cancelled = job_store.cancel_jobs(conn, campaign.id, now)
    return CampaignChange(name, CampaignState.CANCELLED, moved, cancelled)


def settle_completion(engine: Engine, now: datetime) -> tuple[list[str], list[str]]:
    """The scheduler's periodic pass: campaigns whose every job has ended become ``completed``,
    and completed ones that got a job to do again (by any path) become ``active``.
    The names of each, for the log."""
    with engine.begin() as conn:
        completed = campaign_store.complete_finished(conn, now)
        reopened = campaign_store.reopen(conn, now)
    return completed, reopened


def breaker_pause(conn: Connection, campaign_id: int, now: datetime, reason: str) -> bool:
    """The breaker's pause: only an active campaign, and the reason kept for whoever resumes it."""
    return campaign_store.set_state(conn, campaign_id, [CampaignState.ACTIVE], CampaignState.PAUSED, now, reason)


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
                lead_job_values(
                    campaign, lead_id, lead.phone, lead.timing, lead.variables, campaign.round, now, settings
                ),
            )
        result.accepted = len(fresh)
        if fresh:
            campaign_store.reopen(conn, now, campaign.id)
    return result
