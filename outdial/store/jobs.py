"""Job state changes. Each one is conditional on the state it expects.

A redelivered task, a second scheduler or a retried webhook finds the row no
longer in that state, changes nothing, and so can never cause a second dial.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, exists, func, insert, or_, select, update

from outdial.models import Attempt, Breaker, Campaign, CampaignState, DncNumber, Job, JobState
from outdial.store import AnyRow, table

jobs = table(Job)
dnc = table(DncNumber)
attempts = table(Attempt)
campaigns = table(Campaign)
breakers = table(Breaker)


def set_state(
    conn: Connection,
    job_id: int,
    expected: str,
    new: str,
    now: datetime,
    **values: Any,
) -> bool:
    """Move one job from ``expected`` to ``new``; False if it was not in ``expected``."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == expected)
        .values(state=new, state_changed_at=now, **values)
    )
    return result.rowcount == 1


def reschedule(
    conn: Connection, job_id: int, expected: str, due: datetime, window_end: datetime | None, now: datetime
) -> bool:
    return set_state(conn, job_id, expected, JobState.SCHEDULED, now, next_due_at=due, window_end=window_end)


def insert_job(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one())


def job_by_idempotency_key(conn: Connection, key: str) -> int | None:
    found = conn.execute(select(jobs.c.id).where(jobs.c.idempotency_key == key)).scalar()
    return int(found) if found is not None else None


def get_job(conn: Connection, job_id: int) -> AnyRow | None:
    return conn.execute(select(jobs).where(jobs.c.id == job_id)).first()


def job_to_dispatch(conn: Connection, job_id: int) -> AnyRow | None:
    """The job, with ``do_not_call``: whether its number is on the list (one query for both)."""
    listed = exists().where(dnc.c.phone == jobs.c.to_number).label("do_not_call")
    return conn.execute(select(jobs, listed).where(jobs.c.id == job_id)).first()


# Scheduler ------------------------------------------------------------------------------

_CLAIM_COLUMNS = (
    jobs.c.id,
    jobs.c.account,
    jobs.c.to_number,
    jobs.c.timing,
    jobs.c.next_due_at,
    jobs.c.window_end,
    jobs.c.priority,
    # For the scheduler's per-campaign budget, and for what Flower shows of the task.
    jobs.c.campaign_id,
    campaigns.c.name.label("campaign"),
    jobs.c.attempts_used,
    jobs.c.transport_retries,
)


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """What makes a job claimable now (with campaigns outer-joined)."""
    return (
        jobs.c.state == JobState.SCHEDULED,
        jobs.c.next_due_at <= now,
        or_(jobs.c.campaign_id.is_(None), campaigns.c.state == CampaignState.ACTIVE),
        jobs.c.account.not_in(select(breakers.c.name).where(breakers.c.scope == "account", breakers.c.open.is_(True))),
    )


def due_counts(conn: Connection, now: datetime) -> dict[str, int]:
    """Jobs the scheduler may claim now, per account (for the "nothing dials while work is due" alert)."""
    query = (
        select(jobs.c.account, func.count())
        .select_from(jobs.outerjoin(campaigns, campaigns.c.id == jobs.c.campaign_id))
        .where(*_due(now))
        .group_by(jobs.c.account)
    )
    return {str(account): int(n) for account, n in conn.execute(query)}


def due_jobs(
    conn: Connection,
    now: datetime,
    limit: int,
    per_account: Mapping[str, int] | None = None,
    per_campaign: Mapping[int, int] | None = None,
) -> Sequence[AnyRow]:
    """Scheduled jobs due by ``now`` in active campaigns (or none) on accounts whose breaker is closed,
    best priority first.

    The partial index on ``next_due_at WHERE state = 'scheduled'`` keeps this
    proportional to the due jobs, whatever the size of the future backlog.
    ``per_account`` caps how many rows one account may take (its pacing
    budget), so an account with a long due backlog cannot crowd out the others;
    ``per_campaign`` does the same for campaigns (their calls-per-minute budget).
    """
    where = _due(now)
    source = jobs.outerjoin(campaigns, campaigns.c.id == jobs.c.campaign_id)
    if not per_account and not per_campaign:
        query = (
            select(*_CLAIM_COLUMNS)
            .select_from(source)
            .where(*where)
            .order_by(jobs.c.priority.desc(), jobs.c.next_due_at)
            .limit(limit)
        )
        return conn.execute(query).all()
    best_first = (jobs.c.priority.desc(), jobs.c.next_due_at)
    rank = func.row_number().over(partition_by=jobs.c.account, order_by=best_first)
    in_campaign = func.row_number().over(partition_by=jobs.c.campaign_id, order_by=best_first)
    ranked = (
        select(*_CLAIM_COLUMNS, rank.label("rank"), in_campaign.label("campaign_rank"))
        .select_from(source)
        .where(*where)
        .subquery()
    )
    caps = []
    if per_account:
        caps.append(ranked.c.rank <= case(dict(per_account), value=ranked.c.account, else_=limit))
    if per_campaign:
        caps.append(ranked.c.campaign_rank <= case(dict(per_campaign), value=ranked.c.campaign_id, else_=limit))
    query = (
        select(*(ranked.c[c.name] for c in _CLAIM_COLUMNS))
        .where(*caps)
        .order_by(ranked.c.priority.desc(), ranked.c.next_due_at)
        .limit(limit)
    )
    return conn.execute(query).all()


def in_flight_by_account(conn: Connection, unknown_since: datetime) -> dict[str, tuple[int, int]]:
    """(queued, calls that may be live) per account: dialing, accepted, or unknown since ``unknown_since``."""
    may_be_live = or_(
        jobs.c.state.in_([JobState.QUEUED, JobState.DIALING, JobState.ACCEPTED]),
        (jobs.c.state == JobState.UNKNOWN) & (jobs.c.state_changed_at >= unknown_since),
    )
    query = select(jobs.c.account, jobs.c.state, func.count()).where(may_be_live).group_by(jobs.c.account, jobs.c.state)
    counts: dict[str, list[int]] = {}
    for account, state, n in conn.execute(query):
        pair = counts.setdefault(str(account), [0, 0])
        pair[0 if state == JobState.QUEUED else 1] += int(n)
    return {a: (q, f) for a, (q, f) in counts.items()}


def campaign_rates(conn: Connection) -> dict[int, int]:
    """Active campaigns with a calls-per-minute limit: id -> calls per minute."""
    query = select(campaigns.c.id, campaigns.c.calls_per_minute).where(
        campaigns.c.state == CampaignState.ACTIVE, campaigns.c.calls_per_minute.is_not(None)
    )
    return {int(cid): int(cpm) for cid, cpm in conn.execute(query)}


def live_calls(conn: Connection, unknown_since: datetime) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per account, the ``job:attempt`` of every call that may be live (dialing, accepted, or
    unknown since ``unknown_since``: a call whose answer was lost may still be ringing), and of
    every dispatch that may be about to dial (queued: its slot is taken before ``dialing``)."""
    query = select(jobs.c.account, jobs.c.id, jobs.c.state, jobs.c.attempts_used, jobs.c.transport_retries).where(
        or_(
            jobs.c.state.in_([JobState.QUEUED, JobState.DIALING, JobState.ACCEPTED]),
            (jobs.c.state == JobState.UNKNOWN) & (jobs.c.state_changed_at >= unknown_since),
        )
    )
    live: dict[str, set[str]] = {}
    pending: dict[str, set[str]] = {}
    for account, job_id, state, attempts_used, transport_retries in conn.execute(query):
        if state == JobState.QUEUED:
            upcoming = attempts_used if transport_retries else attempts_used + 1
            pending.setdefault(str(account), set()).add(f"{job_id}:{upcoming}")
        else:
            live.setdefault(str(account), set()).add(f"{job_id}:{attempts_used}")
    return live, pending


def mark_queued(conn: Connection, job_ids: Sequence[int], now: datetime) -> list[int]:
    """``scheduled -> queued`` for those of ``job_ids`` still scheduled; the ids this call moved."""
    if not job_ids:
        return []
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id.in_(job_ids), jobs.c.state == JobState.SCHEDULED)
        .values(state=JobState.QUEUED, state_changed_at=now)
        .returning(jobs.c.id)
    )
    return [int(r[0]) for r in result]


def stale_jobs(conn: Connection, state: str, older_than: datetime, limit: int) -> Sequence[AnyRow]:
    """Jobs in flight that have sat in ``state`` since before ``older_than`` (lost messages, dead workers)."""
    return conn.execute(
        select(
            jobs.c.id,
            jobs.c.state_changed_at,
            jobs.c.account,
            jobs.c.provider_call_id,
            jobs.c.to_number,
            jobs.c.campaign_id,
            campaigns.c.name.label("campaign"),
            jobs.c.attempts_used,
            jobs.c.transport_retries,
        )
        .select_from(jobs.outerjoin(campaigns, campaigns.c.id == jobs.c.campaign_id))
        .where(jobs.c.state == state, jobs.c.state_changed_at < older_than)
        .order_by(jobs.c.state_changed_at)
        .limit(limit)
    ).all()


def renew_queued(conn: Connection, job_id: int, seen_at: datetime, now: datetime) -> bool:
    """Take over a stale queued job for re-sending, unless someone else did first."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED, jobs.c.state_changed_at == seen_at)
        .values(state_changed_at=now)
    )
    return result.rowcount == 1


# Worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialStart:
    job_id: int
    attempt_id: int
    number: int
    account: str
    to_number: str
    variables: dict[str, Any]
    due_at: datetime | None


def begin_dial(conn: Connection, job: AnyRow, provider: str, now: datetime) -> DialStart | None:
    """``queued -> dialing`` and the attempt row, in the caller's transaction.

    After this commits, a request may leave at any moment: a crash from here on
    leaves the job in ``dialing`` for reconciliation, never for a blind redial.
    """
    resend = job.transport_retries > 0 and job.attempts_used > 0
    number = job.attempts_used if resend else job.attempts_used + 1
    if not set_state(conn, job.id, JobState.QUEUED, JobState.DIALING, now, attempts_used=number):
        return None
    # The job's request count, taken inside the INSERT: one round trip less per dispatch.
    seq = select(func.count() + 1).where(attempts.c.job_id == job.id).scalar_subquery()
    attempt_id = conn.execute(
        insert(attempts)
        .values(
            job_id=job.id,
            number=number,
            seq=seq,
            account=job.account,
            provider=provider,
            due_at=job.next_due_at,
            requested_at=now,
        )
        .returning(attempts.c.id)
    ).scalar_one()
    return DialStart(job.id, int(attempt_id), number, job.account, job.to_number, dict(job.variables), job.next_due_at)


def record_response(conn: Connection, attempt_id: int, **values: Any) -> None:
    conn.execute(update(attempts).where(attempts.c.id == attempt_id).values(**values))


def open_attempt(conn: Connection, job_id: int) -> AnyRow | None:
    """The job's newest attempt."""
    return conn.execute(
        select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.seq.desc()).limit(1)
    ).first()


def attempt_for_call(conn: Connection, provider: str, call_id: str) -> AnyRow | None:
    return conn.execute(
        select(attempts).where(attempts.c.provider == provider, attempts.c.provider_call_id == call_id)
    ).first()


def settle_attempt(conn: Connection, attempt_id: int, outcome: str, raw_status: str, ended_at: datetime) -> bool:
    """Give an attempt its outcome once; False if it already had one."""
    result = conn.execute(
        update(attempts)
        .where(attempts.c.id == attempt_id, attempts.c.outcome.is_(None))
        .values(outcome=outcome, raw_status=raw_status, ended_at=ended_at)
    )
    return result.rowcount == 1


# Campaign-level -------------------------------------------------------------------------


def cancel_jobs(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Cancel every job of a campaign that has not been handed to a worker."""
    result = conn.execute(
        update(jobs)
        .where(
            jobs.c.campaign_id == campaign_id,
            jobs.c.state.in_([JobState.SCHEDULED, JobState.QUEUED]),
        )
        .values(state=JobState.CANCELLED, state_changed_at=now, reason="cancelled")
    )
    return int(result.rowcount)


def counts_by_state(conn: Connection, campaign_id: int | None = None) -> dict[str, int]:
    query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
    if campaign_id is not None:
        query = query.where(jobs.c.campaign_id == campaign_id)
    return {str(state): int(n) for state, n in conn.execute(query)}


def jobs_in(conn: Connection, ids: Iterable[int]) -> Sequence[AnyRow]:
    return conn.execute(select(jobs).where(jobs.c.id.in_(list(ids)))).all()


def attempts_of(conn: Connection, job_id: int) -> Sequence[AnyRow]:
    return conn.execute(select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.seq)).all()


def outcome_counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Jobs per final state and last outcome, e.g. ``completed/voicemail``."""
    query = (
        select(jobs.c.state, jobs.c.last_outcome, func.count())
        .where(jobs.c.campaign_id == campaign_id)
        .group_by(jobs.c.state, jobs.c.last_outcome)
    )
    return {f"{state}/{outcome or '-'}": int(n) for state, outcome, n in conn.execute(query)}


def accepted_attempts_by_number(conn: Connection, campaign_id: int) -> dict[str, int]:
    query = (
        select(jobs.c.to_number, func.count())
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id, attempts.c.result == "accepted")
        .group_by(jobs.c.to_number)
    )
    return {str(n): int(c) for n, c in conn.execute(query)}


def awaiting_outcome(
    conn: Connection, accepted_before: datetime, checked_before: datetime, limit: int
) -> Sequence[AnyRow]:
    """Calls whose outcome has not come: accepted a while ago, or ``unknown`` with a call id to look up."""
    not_checked_lately = or_(jobs.c.checked_at.is_(None), jobs.c.checked_at < checked_before)
    query = (
        select(jobs.c.id, jobs.c.account, jobs.c.provider_call_id, jobs.c.state)
        .where(
            jobs.c.provider_call_id.is_not(None),
            not_checked_lately,
            or_(
                (jobs.c.state == JobState.ACCEPTED) & (jobs.c.state_changed_at < accepted_before),
                jobs.c.state == JobState.UNKNOWN,
            ),
        )
        .order_by(jobs.c.checked_at.is_not(None), jobs.c.checked_at)
        .limit(limit)
    )
    return conn.execute(query).all()


def mark_checked(conn: Connection, job_ids: Sequence[int], now: datetime) -> None:
    if job_ids:
        conn.execute(update(jobs).where(jobs.c.id.in_(list(job_ids))).values(checked_at=now))
