"""The shared data model: campaigns, leads, jobs and their state machine, attempts, provider events,
do-not-call, API keys.

Times are stored as UTC. A job's ``next_due_at`` is the only clock that
decides when it is placed; the broker never holds a future call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments INTEGER PRIMARY KEY, so big ids are INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python; ``timestamptz`` on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobState(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    DIALING = "dialing"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    UNKNOWN = "unknown"


ACTIVE_STATES = frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.DIALING, JobState.ACCEPTED})
TERMINAL_STATES = frozenset(set(JobState) - ACTIVE_STATES)


class Edge(StrEnum):
    """The named ways a job changes state: each is one function of ``outdial.store.jobs``."""

    CLAIM = "claim"  # the scheduler hands a due job to a worker
    RESEND = "resend"  # the queued lease ran out (a lost task): the same job is sent again
    CARRY_OVER = "carry_over"  # claimed after its window closed: due in the next window
    POSTPONE = "postpone"  # not dialled now (paced, campaign paused, window closed): the same attempt later
    BEGIN_DIAL = "begin_dial"  # committed before the request leaves
    ACCEPT = "accept"  # the provider took the call and gave its id
    SCHEDULE_RETRY = "schedule_retry"  # a resend after transport trouble, or the next attempt
    MARK_UNKNOWN = "mark_unknown"  # the call may or may not have been placed: never redialled blindly
    RECORD_CALL = "record_call"  # an unknown job learns its call id late: its outcome can settle it
    COMPLETE = "complete"
    EXHAUST = "exhaust"
    EXPIRE = "expire"
    REJECT = "reject"
    CANCEL = "cancel"
    SUPPRESS = "suppress"
    RETRY_BY_HAND = "retry_by_hand"  # a person dials an ended job once more (never automatic)


S = JobState
# Every allowed transition, and the one function that performs it. Anything else raises
# (``outdial.store.jobs.IllegalTransition``). The end of a call (its outcome, or transport
# trouble out of patience) goes wherever the retry policy says.
_AFTER_A_CALL = {
    S.COMPLETED: Edge.COMPLETE,
    S.SCHEDULED: Edge.SCHEDULE_RETRY,
    S.EXHAUSTED: Edge.EXHAUST,
    S.EXPIRED: Edge.EXPIRE,
    S.REJECTED: Edge.REJECT,
}
TRANSITIONS: dict[tuple[JobState, JobState], Edge] = {
    (S.SCHEDULED, S.QUEUED): Edge.CLAIM,
    (S.SCHEDULED, S.SCHEDULED): Edge.CARRY_OVER,
    (S.SCHEDULED, S.EXPIRED): Edge.EXPIRE,
    (S.SCHEDULED, S.REJECTED): Edge.REJECT,
    (S.SCHEDULED, S.CANCELLED): Edge.CANCEL,
    (S.QUEUED, S.QUEUED): Edge.RESEND,
    (S.QUEUED, S.DIALING): Edge.BEGIN_DIAL,
    (S.QUEUED, S.SCHEDULED): Edge.POSTPONE,
    (S.QUEUED, S.EXPIRED): Edge.EXPIRE,
    (S.QUEUED, S.REJECTED): Edge.REJECT,
    (S.QUEUED, S.CANCELLED): Edge.CANCEL,
    (S.QUEUED, S.SUPPRESSED): Edge.SUPPRESS,
    (S.DIALING, S.ACCEPTED): Edge.ACCEPT,
    (S.DIALING, S.UNKNOWN): Edge.MARK_UNKNOWN,
    **{(S.DIALING, to): edge for to, edge in _AFTER_A_CALL.items()},
    (S.ACCEPTED, S.UNKNOWN): Edge.MARK_UNKNOWN,
    **{(S.ACCEPTED, to): edge for to, edge in _AFTER_A_CALL.items()},
    (S.UNKNOWN, S.UNKNOWN): Edge.RECORD_CALL,
    # An unknown call is settled only by what the provider reports about it (webhook or poll).
    **{(S.UNKNOWN, to): edge for to, edge in _AFTER_A_CALL.items()},
    # Only a person (outdial jobs retry|cancel, the API, the campaign page) takes these. A person's
    # retry of an ``unknown`` job takes its schedule_retry edge above, the event's reason naming who.
    (S.UNKNOWN, S.CANCELLED): Edge.CANCEL,
    **{(ended, S.SCHEDULED): Edge.RETRY_BY_HAND for ended in (S.EXHAUSTED, S.EXPIRED, S.REJECTED)},
}
del S


class CampaignState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    # Every job has ended; new leads, a new round or a retried job make it active again.
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    account: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default=CampaignState.ACTIVE)
    # The campaign layer of the SPEC 5 fields (TimingFields.given()).
    timing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retry_on: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cron: Mapped[str | None] = mapped_column(String(100))
    round: Mapped[int] = mapped_column(Integer, default=1)
    next_round_at: Mapped[datetime | None]
    calls_per_minute: Mapped[int | None] = mapped_column(Integer)
    pause_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (UniqueConstraint("campaign_id", "phone", name="uq_leads_campaign_phone"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The lead layer of the SPEC 5 fields (schedule_at, timezone, priority from the CSV).
    timing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_row: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One call to place, with its attempt budget; a campaign round makes one per lead."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Claiming due jobs reads only scheduled rows that are due: cost follows the due
        # jobs, not the backlog.
        Index(
            "ix_jobs_due",
            "next_due_at",
            postgresql_where=text("state = 'scheduled'"),
            sqlite_where=text("state = 'scheduled'"),
        ),
        # Leases: the few jobs in flight, found without reading the rest.
        Index(
            "ix_jobs_in_flight",
            "state",
            "state_changed_at",
            postgresql_where=text("state IN ('queued', 'dialing', 'accepted')"),
            sqlite_where=text("state IN ('queued', 'dialing', 'accepted')"),
        ),
        # Calls whose answer was lost may still be live: pacing keeps their slots a while.
        Index(
            "ix_jobs_unknown",
            "state_changed_at",
            postgresql_where=text("state = 'unknown'"),
            sqlite_where=text("state = 'unknown'"),
        ),
        Index("ix_jobs_campaign_state", "campaign_id", "state"),
        Index("ix_jobs_lead_round", "lead_id", "round"),
        UniqueConstraint("idempotency_key", name="uq_jobs_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=1)
    account: Mapped[str] = mapped_column(String(100))
    to_number: Mapped[str] = mapped_column(String(20))
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Per-call provider options that override the account's (agent_id, language, batch_id).
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The merged SPEC 5 fields (campaign, then lead, then job) the rules are compiled from.
    timing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retry_on: Mapped[list[Any]] = mapped_column(JSON, default=list)

    state: Mapped[str] = mapped_column(String(20), default=JobState.SCHEDULED)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[datetime | None]
    # The end of the effective window next_due_at lies in, as far as it was computed:
    # before it, dispatch needs no recheck.
    window_end: Mapped[datetime | None]
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)

    # When the status poller last asked the provider about this job's call.
    checked_at: Mapped[datetime | None]

    attempts_used: Mapped[int] = mapped_column(Integer, default=0)
    # Re-sends after transport trouble in the current attempt; they do not use the budget.
    transport_retries: Mapped[int] = mapped_column(Integer, default=0)
    provider_call_id: Mapped[str | None] = mapped_column(String(200))
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # SHA-256 of the request the idempotency key came with: the same key with another
    # request is a conflict, not the first job (None for jobs made before it was kept).
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEvent(Base):
    """One transition of a job, written in the transaction that made it: the job's history."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)  # the job's attempts_used after the transition
    at: Mapped[datetime]


class Attempt(Base):
    """One request sent (or about to be sent) to a provider for a job."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("job_id", "seq", name="uq_attempts_job_seq"),
        Index("ix_attempts_provider_call", "provider", "provider_call_id"),
        Index("ix_attempts_provider_ref", "provider", "provider_ref"),
        # The circuit breaker reads the last minutes of attempts.
        Index("ix_attempts_requested_at", "requested_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # which attempt of the budget (1-based)
    seq: Mapped[int] = mapped_column(Integer)  # every request of the job, in order
    account: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[datetime | None]
    requested_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    latency_ms: Mapped[float | None]
    http_status: Mapped[int | None] = mapped_column(Integer)
    provider_call_id: Mapped[str | None] = mapped_column(String(200))
    # accepted | retry_safe | unknown | rejected; None while the request is in flight.
    result: Mapped[str | None] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(20))
    raw_status: Mapped[str | None] = mapped_column(String(100))
    # A second id of the same call, learnt later (NLPearl: the call id of the call request
    # in provider_call_id; MOBtexting: a webhook's mid), by which later events match.
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    # What the provider reported about the call: duration, recording URL, transcript, summary.
    result_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ProviderEvent(Base):
    """A raw webhook or status-poll result, kept as received; applied at most once."""

    __tablename__ = "provider_events"
    # Deduplicated per account: one account's events can never shadow another's.
    __table_args__ = (UniqueConstraint("provider", "account", "event_key", name="uq_provider_events_account_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    account: Mapped[str | None] = mapped_column(String(100))
    event_key: Mapped[str] = mapped_column(String(300))
    provider_call_id: Mapped[str | None] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # webhook | poll
    payload: Mapped[str] = mapped_column(Text)
    # The adapter's reading of the payload, so an event that arrives before its call id
    # is recorded can be applied later without parsing it again.
    raw_status: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(20))
    ended_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    job_id: Mapped[int | None] = mapped_column(BigId)
    # What applying it did: applied, duplicate_outcome, stale, noted, unmatched.
    applied: Mapped[str | None] = mapped_column(String(40), index=True)


class Breaker(Base):
    """A circuit breaker of an account or a campaign: open while its recent failure rate is too high."""

    __tablename__ = "breakers"

    scope: Mapped[str] = mapped_column(String(20), primary_key=True)  # account | campaign
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    open: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime | None]
    # Attempts before this do not count: a person resumed it then.
    reset_at: Mapped[datetime | None]


class DncNumber(Base):
    __tablename__ = "dnc_numbers"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    # What the key may do (outdial.api.auth.Scope.parse); None: everything, as every key made
    # before scopes existed.
    scopes: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class ImportState(StrEnum):
    """An uploaded lead list: waiting for a worker, being imported, or ended one way or the other."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class LeadImport(Base):
    """A CSV lead list uploaded over HTTP and imported by a worker: its progress, then its result.

    The counts grow as the worker goes (rows read, accepted, rejected); when it is done they are
    the import's summary, with ``rows = accepted + rejected + duplicates + suppressed``.
    """

    __tablename__ = "imports"
    __table_args__ = (
        # The scheduler's sweep of lost imports reads only those not ended, every tick.
        Index(
            "ix_imports_unended",
            "state",
            postgresql_where=text("state IN ('queued', 'running')"),
            sqlite_where=text("state IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20), default=ImportState.QUEUED)
    # The name the uploader gave the file, shown back; never used as a path.
    file_name: Mapped[str | None] = mapped_column(String(255))
    # The import's options (default_region, phone_column), as given.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The API key that uploaded it.
    uploaded_by: Mapped[str | None] = mapped_column(String(100))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    # Whether a report of rejected rows exists to download (GET /imports/{id}/report.csv).
    has_report: Mapped[bool] = mapped_column(default=False)
    # Why a failed import imported nothing: the whole file's one-line reason.
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The running import's heartbeat, written when it starts and with each progress report: a
    # run whose heartbeat is older than OUTDIAL_IMPORT_STALE_S belongs to a worker that died,
    # and may be taken over; a fresher one is left alone, so two live runs never overlap.
    progress_at: Mapped[datetime | None]
    # The scheduler's sends of ``outdial.run_import`` after the first was lost (none: the API's
    # send was enough), and when it last sent one. After OUTDIAL_IMPORT_MAX_RESENDS the import fails.
    sends: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
