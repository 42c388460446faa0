"""Read-only queries behind a campaign's status (``outdial status``, ``GET /campaigns/{name}/status``)
and its export (``outdial export``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, func, or_, select

from outdial.models import Attempt, Breaker, Job, JobState
from outdial.store import AnyRow, table
from outdial.vocab import NOT_ACCEPTED, Verdict

jobs = table(Job)
attempts = table(Attempt)
breakers = table(Breaker)

# The attempts that count as dials in a dial rate: every request that reached a provider (or may
# have), still in flight or answered; not those that placed nothing and were safe to send again
# (never sent for want of room or window, refused before reaching it, a 429).
DIALLED = or_(attempts.c.result.is_(None), attempts.c.result != Verdict.RETRY_SAFE)


def next_due(conn: Connection, campaign_id: int) -> datetime | None:
    """When the campaign's next scheduled job is due; None when none is scheduled."""
    query = select(func.min(jobs.c.next_due_at)).where(
        jobs.c.campaign_id == campaign_id, jobs.c.state == JobState.SCHEDULED
    )
    found: datetime | None = conn.execute(query).scalar()
    return found


def next_scheduled(conn: Connection, campaign_id: int) -> AnyRow | None:
    """The campaign's scheduled job due first (its timing says which window it waits for)."""
    query = (
        select(jobs.c.id, jobs.c.next_due_at, jobs.c.timing, jobs.c.to_number)
        .where(jobs.c.campaign_id == campaign_id, jobs.c.state == JobState.SCHEDULED)
        .order_by(jobs.c.next_due_at, jobs.c.id)
        .limit(1)
    )
    return conn.execute(query).first()


def due_count(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Scheduled jobs of the campaign already due."""
    query = select(func.count()).where(
        jobs.c.campaign_id == campaign_id, jobs.c.state == JobState.SCHEDULED, jobs.c.next_due_at <= now
    )
    return int(conn.execute(query).scalar_one())


def open_breaker(conn: Connection, scope: str, name: str) -> AnyRow | None:
    """The breaker of an account or campaign (by id), if it is open."""
    query = select(breakers).where(breakers.c.scope == scope, breakers.c.name == name, breakers.c.open.is_(True))
    return conn.execute(query).first()


@dataclass(frozen=True)
class RecentDials:
    """The campaign's dials at or after an instant: how many, the first of them, and whether it
    had dialled before that instant (when not, the window really began with the first dial)."""

    count: int
    first_at: datetime | None
    dialled_before: bool


def dials_since(conn: Connection, campaign_id: int, since: datetime) -> RecentDials:
    """The campaign's dials (:data:`DIALLED`) at or after ``since``."""
    of_campaign = (
        select(func.count(), func.min(attempts.c.requested_at))
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id, DIALLED)
    )
    count, first = conn.execute(of_campaign.where(attempts.c.requested_at >= since)).one()
    # EXISTS stops at the first older dial; a young campaign has few dials to look through.
    earlier = select(attempts.c.id).join(jobs, jobs.c.id == attempts.c.job_id)
    earlier = earlier.where(jobs.c.campaign_id == campaign_id, DIALLED, attempts.c.requested_at < since)
    before = bool(conn.execute(select(earlier.exists())).scalar())
    return RecentDials(int(count), as_utc(first) if first is not None else None, before)


def as_utc(value: datetime | str) -> datetime:
    # min() skips the column type's conversion on SQLite: read it back as UTC.
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def last_outcomes(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Jobs by the outcome of their latest call (jobs not called yet are not counted)."""
    query = (
        select(jobs.c.last_outcome, func.count())
        .where(jobs.c.campaign_id == campaign_id, jobs.c.last_outcome.is_not(None))
        .group_by(jobs.c.last_outcome)
    )
    return {str(outcome): int(n) for outcome, n in conn.execute(query)}


def recent_errors(conn: Connection, campaign_id: int, limit: int) -> Sequence[AnyRow]:
    """The campaign's latest requests that failed or went unanswered, newest first."""
    failed = or_(attempts.c.error.is_not(None), attempts.c.result.in_(NOT_ACCEPTED))
    query = (
        select(
            attempts.c.job_id,
            attempts.c.requested_at,
            attempts.c.result,
            attempts.c.http_status,
            attempts.c.error_code,
            attempts.c.error,
        )
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(jobs.c.campaign_id == campaign_id, failed)
        .order_by(attempts.c.requested_at.desc(), attempts.c.id.desc())
        .limit(limit)
    )
    return conn.execute(query).all()


# Export ---------------------------------------------------------------------------------

_EXPORT_COLUMNS = (
    jobs.c.id,
    jobs.c.lead_id,
    jobs.c.round,
    jobs.c.to_number,
    jobs.c.state,
    jobs.c.last_outcome,
    jobs.c.attempts_used,
    jobs.c.reason,
    jobs.c.next_due_at,
    jobs.c.state_changed_at,
    jobs.c.created_at,
    jobs.c.variables,
)


def _pages(conn: Connection, query: Select[Any], page_size: int) -> Iterator[Sequence[AnyRow]]:
    """``query``'s rows in job id order, a page at a time (keyset paging: memory stays one page)."""
    after = 0
    while page := conn.execute(query.where(jobs.c.id > after).order_by(jobs.c.id).limit(page_size)).all():
        yield page
        after = int(page[-1].id)


def job_pages(conn: Connection, campaign_id: int, page_size: int) -> Iterator[Sequence[AnyRow]]:
    """The campaign's jobs, as exported, a page at a time."""
    return _pages(conn, select(*_EXPORT_COLUMNS).where(jobs.c.campaign_id == campaign_id), page_size)


def variable_pages(conn: Connection, campaign_id: int, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """The variables of the campaign's jobs, a page at a time."""
    query = select(jobs.c.id, jobs.c.variables).where(jobs.c.campaign_id == campaign_id)
    for page in _pages(conn, query, page_size):
        yield [dict(row.variables or {}) for row in page]


def call_ids_of(conn: Connection, job_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each job's provider call ids, in the order its requests were sent."""
    if not job_ids:
        return {}
    query = (
        select(attempts.c.job_id, attempts.c.provider_call_id)
        .where(attempts.c.job_id.in_(list(job_ids)), attempts.c.provider_call_id.is_not(None))
        .order_by(attempts.c.job_id, attempts.c.seq)
    )
    found: dict[int, list[str]] = {}
    for job_id, call_id in conn.execute(query):
        ids = found.setdefault(int(job_id), [])
        if call_id not in ids:
            ids.append(str(call_id))
    return found
