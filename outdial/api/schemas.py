"""The shapes of the API's JSON answers, as ``/docs`` and ``/openapi.json`` show them, each with an example.

The services build these answers as plain dicts (the CLI prints the same ones), and each
route names its model here as ``response_model``: FastAPI checks every answer against it
before sending it, so what the documentation says is what goes out. The models forbid
keys they do not list, so a key added to a service's answer and not here fails the API's
tests (a 500) instead of being dropped without a word. Routes answer with
``response_model_exclude_unset``: a key a service leaves out (``reason`` of a call that did
not end at once, ``cancelled_jobs`` of a pause) stays out, rather than turning up as null.

Times the services write as text (``isoformat()``, ``+00:00``) stay text, checked to be
ISO 8601 instants; a campaign's own times are datetimes, which go out as ``...Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from outdial.models import CampaignState, JobState
from outdial.services.outcomes import Applied
from outdial.services.timing.spec import TIMING_EXAMPLE
from outdial.services.waiting import Why
from outdial.vocab import Outcome, Verdict, listed


def _instant(value: str) -> str:
    if datetime.fromisoformat(value).tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return value


# An instant as a service wrote it (ISO 8601 with its offset), sent on unchanged.
Instant = Annotated[str, AfterValidator(_instant), WithJsonSchema({"type": "string", "format": "date-time"})]


def examples(*values: dict[str, Any]) -> ConfigDict:
    """A model's settings: no keys but its own, and its examples (the first is what /docs shows)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(values)})


# The examples: one campaign on the shipped CallKaro account, seen at one moment.

STATE_COUNTS_EXAMPLE = {
    "scheduled": 180,
    "queued": 4,
    "dialing": 2,
    "accepted": 3,
    "completed": 38,
    "exhausted": 6,
    "expired": 0,
    "rejected": 1,
    "cancelled": 0,
    "suppressed": 2,
    "unknown": 1,
}
WHY_EXAMPLE = {
    "why": "dialling",
    "dialling": True,
    "text": "9 calls in progress; next call due 2026-12-01 10:30 EST America/New_York (15:30 UTC)",
    "zone": "America/New_York",
    "next_due_at": "2026-12-01T15:30:00+00:00",
    "next_due_local": "2026-12-01T10:30:00-05:00",
}
WINDOW_CLOSED_EXAMPLE = {
    "why": "window_closed",
    "dialling": False,
    "text": "calling window closed until 2026-12-02 09:00 EST America/New_York (14:00 UTC); "
    "next call due 2026-12-02 09:00 EST America/New_York (14:00 UTC)",
    "zone": "America/New_York",
    "next_due_at": "2026-12-02T14:00:00+00:00",
    "next_due_local": "2026-12-02T09:00:00-05:00",
}
CAMPAIGN_EXAMPLE: dict[str, Any] = {
    "id": 12,
    "name": "dental-reminders-dec",
    "account": "sim-callkaro",
    "state": "active",
    "pause_reason": None,
    "timing": TIMING_EXAMPLE,
    "retry_on": ["no_answer", "busy", "failed"],
    "cron": None,
    "round": 1,
    "next_round_at": None,
    "calls_per_minute": 60,
    "created_at": "2026-11-30T14:05:12.481203Z",
    "updated_at": "2026-12-01T15:02:40.907114Z",
    "counts": {k: v for k, v in STATE_COUNTS_EXAMPLE.items() if v},
}
NEW_CAMPAIGN_EXAMPLE: dict[str, Any] = {
    **CAMPAIGN_EXAMPLE,
    "id": 13,
    "name": "renewals-weekly",
    "state": "paused",
    "pause_reason": "created paused by api:crm",
    "timing": {"timezone": "Asia/Kolkata", "min_trigger_time": "10:00", "max_trigger_time": "19:00"},
    "cron": "0 10 * * 1",
    "next_round_at": "2026-12-07T04:30:00Z",
    "calls_per_minute": None,
    "created_at": "2026-12-01T15:10:02.118406Z",
    "updated_at": "2026-12-01T15:10:02.118406Z",
    "counts": {},
}
JOB_EXAMPLE: dict[str, Any] = {
    "id": 4471,
    "state": "scheduled",
    "to_number": "+14155550123",
    "account": "sim-callkaro",
    "campaign_id": 12,
    "lead_id": 3301,
    "round": 1,
    "priority": 0,
    "idempotency_key": None,
    "created_at": "2026-11-30T14:06:40.112907+00:00",
    "state_changed_at": "2026-12-01T15:01:52.644019+00:00",
    "next_due_at": "2026-12-01T15:31:52.644019+00:00",
    "attempts_used": 1,
    "provider_call_id": "a1b2c3d4e5",
    "last_outcome": "no_answer",
    "reason": None,
}
ATTEMPT_EXAMPLE: dict[str, Any] = {
    "number": 1,
    "requested_at": "2026-12-01T15:00:03.270115+00:00",
    "http_status": 200,
    "provider_call_id": "a1b2c3d4e5",
    "result": "accepted",
    "outcome": "no_answer",
    "raw_status": "USER_UNAVAILABLE",
    "error": None,
    "provider_ref": None,
    "result_data": {"call_duration": 0},
    "reported": [
        {
            "raw_status": "USER_UNAVAILABLE",
            "outcome": "no_answer",
            "applied": "applied",
            "at": "2026-12-01T15:01:52.644019+00:00",
        }
    ],
}
EVENTS_EXAMPLE = [
    {"at": "2026-12-01T15:00:01.902331+00:00", "from": "scheduled", "to": "queued", "attempt": 0, "reason": None},
    {"at": "2026-12-01T15:00:03.268740+00:00", "from": "queued", "to": "dialing", "attempt": 1, "reason": None},
    {"at": "2026-12-01T15:00:03.911502+00:00", "from": "dialing", "to": "accepted", "attempt": 1, "reason": None},
    {
        "at": "2026-12-01T15:01:52.644019+00:00",
        "from": "accepted",
        "to": "scheduled",
        "attempt": 1,
        "reason": "outcome no_answer (USER_UNAVAILABLE)",
    },
]
JOB_DETAIL_EXAMPLE: dict[str, Any] = {**JOB_EXAMPLE, "attempts": [ATTEMPT_EXAMPLE], "events": EVENTS_EXAMPLE}
LATEST_ATTEMPT_EXAMPLE = {"raw_status": "USER_UNAVAILABLE", "http_status": 200, "error": None}
UNKNOWN_JOB_EXAMPLE: dict[str, Any] = {
    **JOB_EXAMPLE,
    "id": 4472,
    "state": "unknown",
    "to_number": "+12125550188",
    "lead_id": 3302,
    "next_due_at": None,
    "provider_call_id": None,
    "last_outcome": None,
    "reason": "503 from the provider: the call may have been placed",
}
RECENT_ERROR_EXAMPLE = {
    "job_id": 4472,
    "at": "2026-12-01T15:02:31.540218+00:00",
    "result": "unknown",
    "http_status": 503,
    "error_code": "503",
    "error": "503 Service Unavailable",
}


# Health --------------------------------------------------------------------------------


class Health(BaseModel):
    model_config = examples({"status": "ok"})

    status: Literal["ok"]


class CheckResult(BaseModel):
    """One readiness check; ``detail`` and ``fix`` only for a caller with an API key (they hold hosts and URLs)."""

    model_config = examples(
        {"ok": True, "detail": "redis://redis:6379/0"},
        {
            "ok": False,
            "detail": "redis://redis:6379/0: Error 111 connecting to redis:6379. Connection refused.",
            "fix": "start Redis, or fix OUTDIAL_REDIS_URL",
        },
        {"ok": True},
    )

    ok: bool
    detail: str | None = Field(default=None, description="What was checked and what it answered (with a key).")
    fix: str | None = Field(default=None, description="What to do about a failed check (with a key).")


class ReadinessChecks(BaseModel):
    model_config = examples(
        {
            "database": {"ok": True, "detail": "postgresql+psycopg://outdial:***@db:5432/outdial"},
            "redis": {"ok": True, "detail": "redis://redis:6379/0"},
            "migrations": {"ok": True, "detail": "at the newest migration"},
        }
    )

    database: CheckResult
    redis: CheckResult
    migrations: CheckResult | None = Field(default=None, description="Checked only when the database answers.")


class Readiness(BaseModel):
    """``/readyz``: 200 with ``status: ok``, or 503 with ``status: unavailable``."""

    model_config = examples(
        {
            "status": "ok",
            "checks": {
                "database": {"ok": True, "detail": "postgresql+psycopg://outdial:***@db:5432/outdial"},
                "redis": {"ok": True, "detail": "redis://redis:6379/0"},
                "migrations": {"ok": True, "detail": "at the newest migration"},
            },
        },
        {
            "status": "unavailable",
            "checks": {"database": {"ok": True}, "redis": {"ok": False}, "migrations": {"ok": True}},
            "details": "send an API key for each check's detail and fix, or run `outdial doctor`",
        },
    )

    status: Literal["ok", "unavailable"]
    checks: ReadinessChecks
    details: str | None = Field(default=None, description="Only without an API key: how to learn more.")


# Calls and jobs ---------------------------------------------------------------------------


class CallAccepted(BaseModel):
    """What ``POST /calls`` made (201), or the first job of a repeated ``Idempotency-Key`` (200)."""

    model_config = examples(
        {"job_id": 4512, "state": "scheduled", "created": True, "next_due_at": "2026-12-02T14:30:00+00:00"},
        {"job_id": 4513, "state": "expired", "created": True, "next_due_at": None, "reason": "window_closed"},
        {"job_id": 4512, "state": "scheduled", "created": False, "next_due_at": "2026-12-02T14:30:00+00:00"},
    )

    job_id: int
    state: JobState
    created: bool = Field(description="False when the Idempotency-Key named a job made before.")
    next_due_at: Instant | None = Field(description="When the first attempt is due; null once the job has ended.")
    reason: str | None = Field(
        default=None, description="Only when the job ended at once: why (e.g. `window_closed`, `do_not_call`)."
    )


class ReportedStatus(BaseModel):
    """A status the provider reported about an attempt's call, applied or not."""

    model_config = examples(ATTEMPT_EXAMPLE["reported"][0])

    raw_status: str | None = Field(description="The provider's own word for it.")
    outcome: Outcome | None
    applied: Applied | None = Field(description="What recording it did; `unmatched` until its call is known.")
    at: Instant


class AttemptShown(BaseModel):
    """One request sent to the provider for the job, and what became of it."""

    model_config = examples(ATTEMPT_EXAMPLE)

    number: int = Field(description="Which attempt of the budget (1-based).")
    requested_at: Instant
    http_status: int | None
    provider_call_id: str | None
    result: Verdict | None = Field(description="What the request came to; null while it is in flight.")
    outcome: Outcome | None = Field(description="How the call ended, once the provider said so.")
    raw_status: str | None
    error: str | None
    provider_ref: str | None = Field(description="A second id of the same call, learnt later.")
    result_data: dict[str, Any] | None = Field(
        description="What the provider reported: duration, recording URL, transcript or summary, where documented."
    )
    reported: list[ReportedStatus]


class JobEventShown(BaseModel):
    """One transition of the job (the ``job_events`` table)."""

    model_config = examples(*EVENTS_EXAMPLE[-1:])

    at: Instant
    from_: JobState = Field(alias="from")
    to: JobState
    attempt: int = Field(description="The job's attempts used after the transition.")
    reason: str | None


class JobSummary(BaseModel):
    """A job without its attempts."""

    model_config = examples(JOB_EXAMPLE)

    id: int
    state: JobState
    to_number: str = Field(description="E.164.")
    account: str
    campaign_id: int | None
    lead_id: int | None
    round: int
    priority: int
    idempotency_key: str | None
    created_at: Instant
    state_changed_at: Instant
    next_due_at: Instant | None
    attempts_used: int
    provider_call_id: str | None
    last_outcome: Outcome | None
    reason: str | None = Field(description="Why the job is in its state, where something said so.")


class JobDetail(JobSummary):
    """A job, its attempts and what became of each, and every transition it made."""

    model_config = examples(JOB_DETAIL_EXAMPLE)

    attempts: list[AttemptShown]
    events: list[JobEventShown]


class LatestAttempt(BaseModel):
    """What the job's newest attempt says (all null before its first)."""

    model_config = examples(LATEST_ATTEMPT_EXAMPLE, {"raw_status": None, "http_status": None, "error": None})

    raw_status: str | None
    http_status: int | None
    error: str | None
    # What the provider reported about the call (services.jobs.RESULT_FIELDS), where it did.
    duration_s: float | None = Field(default=None, description="The call length in seconds, as reported.")
    recording_url: str | None = Field(default=None, description="Where the provider keeps the call's recording.")
    transcript: str | list[Any] | None = Field(default=None, description="The conversation, as the provider gave it.")
    summary: str | None = Field(default=None, description="The provider's summary of the call.")


class JobListed(JobSummary):
    model_config = examples({**JOB_EXAMPLE, "latest_attempt": LATEST_ATTEMPT_EXAMPLE})

    latest_attempt: LatestAttempt


class JobPage(BaseModel):
    """A page of a campaign's jobs in id order; pass ``next_after`` as ``after`` for the next (null on the last)."""

    model_config = examples(
        {
            "jobs": [
                {**JOB_EXAMPLE, "latest_attempt": LATEST_ATTEMPT_EXAMPLE},
                {
                    **UNKNOWN_JOB_EXAMPLE,
                    "latest_attempt": {"raw_status": None, "http_status": 503, "error": "503 Service Unavailable"},
                },
            ],
            "next_after": 4472,
        }
    )

    jobs: list[JobListed]
    next_after: int | None


# Campaigns ----------------------------------------------------------------------------------


class WhyShown(BaseModel):
    """Why the campaign is (not) dialling, and when its next call is due, in its zone and in UTC."""

    model_config = examples(WHY_EXAMPLE, WINDOW_CLOSED_EXAMPLE)

    why: Why
    dialling: bool
    text: str = Field(description="One line for a person.")
    zone: str = Field(description="The IANA zone `next_due_local` is shown in.")
    next_due_at: Instant | None
    next_due_local: Instant | None


class Campaign(BaseModel):
    """A campaign's settings and state, with its jobs counted per state (states without jobs left out)."""

    model_config = examples(CAMPAIGN_EXAMPLE, NEW_CAMPAIGN_EXAMPLE)

    id: int
    name: str
    account: str
    state: CampaignState
    pause_reason: str | None = Field(description="Who paused or cancelled it, and why.")
    timing: dict[str, Any] = Field(description="The SPEC 5 fields given at the campaign layer (as in CampaignBody).")
    # Text, not Outcome: a campaign made without retry_on copies OUTDIAL_RETRY_ON, which nothing checks.
    retry_on: list[str] = Field(description=f"Outcomes that use a retry: any of {listed(Outcome)}.")
    cron: str | None
    round: int
    next_round_at: datetime | None
    calls_per_minute: int | None
    created_at: datetime
    updated_at: datetime
    counts: dict[JobState, int]


class CampaignDetail(Campaign):
    model_config = examples({**CAMPAIGN_EXAMPLE, "why": WHY_EXAMPLE})

    why: WhyShown


class DialRate(BaseModel):
    """Dials per minute lately: requests that reached a provider (or may have), not those that
    placed nothing and were safe to send again."""

    model_config = examples({"window_minutes": 5.0, "attempts": 212, "per_minute": 42.4, "partial": False})

    window_minutes: float = Field(description="The last 5 minutes, or less when the campaign began dialling since.")
    attempts: int = Field(description="Dials in the window.")
    per_minute: float
    partial: bool = Field(description="The campaign began dialling within the last 5 minutes.")


class RecentError(BaseModel):
    """A request that failed or went unanswered."""

    model_config = examples(RECENT_ERROR_EXAMPLE)

    job_id: int
    at: Instant | None
    result: Verdict | None
    http_status: int | None
    error_code: str | None
    error: str | None


class CampaignStatus(BaseModel):
    """A campaign's progress at one instant (as ``outdial status``)."""

    model_config = examples(
        {
            "campaign": "dental-reminders-dec",
            "id": 12,
            "state": "active",
            "pause_reason": None,
            "account": "sim-callkaro",
            "round": 1,
            "as_of": "2026-12-01T15:27:03.118842+00:00",
            "jobs": 237,
            "active": 189,
            "done": 48,
            "percent_done": 20.3,
            "finished": False,
            "counts": STATE_COUNTS_EXAMPLE,
            "outcomes": {"completed": 31, "voicemail": 7, "no_answer": 9, "busy": 2},
            "attempt_results": {
                "completed": 31,
                "voicemail": 7,
                "no_answer": 14,
                "busy": 3,
                "accepted": 3,
                "unknown": 1,
                "rejected": 1,
                "in_flight": 2,
            },
            "next_due_at": "2026-12-01T15:30:00+00:00",
            "why": WHY_EXAMPLE,
            "dial_rate": {"window_minutes": 5.0, "attempts": 212, "per_minute": 42.4, "partial": False},
            "recent_errors": [RECENT_ERROR_EXAMPLE],
        }
    )

    campaign: str
    id: int
    state: CampaignState
    pause_reason: str | None
    account: str
    round: int
    as_of: Instant
    jobs: int
    active: int = Field(description="Jobs not yet ended (scheduled, queued, dialing, accepted).")
    done: int
    percent_done: float
    finished: bool = Field(description="Every job has ended: nothing more is dialled this round.")
    counts: dict[JobState, int] = Field(description="Jobs per state, every state listed.")
    outcomes: dict[Outcome, int] = Field(description="Jobs by the outcome of their latest call.")
    attempt_results: dict[str, int] = Field(
        description="Attempts by how they ended: the call's outcome, else the request's result, else `in_flight`."
    )
    next_due_at: Instant | None
    why: WhyShown
    dial_rate: DialRate
    recent_errors: list[RecentError]


class CampaignChanged(BaseModel):
    """What a pause, resume or cancel did: the campaign's state after it, and whether it moved."""

    model_config = examples(
        {"campaign": "dental-reminders-dec", "state": "paused", "changed": True},
        {"campaign": "dental-reminders-dec", "state": "cancelled", "changed": True, "cancelled_jobs": 180},
    )

    campaign: str
    state: CampaignState
    changed: bool = Field(description="False when it was in that state already.")
    cancelled_jobs: int = Field(default=0, description="Only in the answer to cancel: the jobs it cancelled.")


# Webhooks -----------------------------------------------------------------------------------


class WebhookReceipt(BaseModel):
    """What became of each call event in the webhook."""

    model_config = examples({"received": 1, "results": ["applied"]}, {"received": 1, "results": ["duplicate"]})

    received: int = Field(description="Call events the body held.")
    results: list[Applied]
