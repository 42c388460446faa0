"""Job state changes. Each one is conditional on the state it expects.

A redelivered task, a second scheduler or a retried webhook finds the row no
longer in that state, changes nothing, and so can never cause a second dial.
Every change goes through :func:`transition`, which checks the edge against
``outdial.models.TRANSITIONS`` and writes the job's ``job_events`` row in the
same transaction; each edge has its named function below it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    ClauseElement,
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.dml import ReturningInsert

from outdial.errors import Conflict
from outdial.models import (
    TERMINAL_STATES,
    TRANSITIONS,
    Attempt,
    Breaker,
    Campaign,
    CampaignState,
    DncNumber,
    Edge,
    Job,
    JobEvent,
    JobState,
)
from outdial.store import AnyRow, table
from outdial.store.events import UNMATCHED
from outdial.vocab import Verdict

jobs = table(Job)
dnc = table(DncNumber)
attempts = table(Attempt)
campaigns = table(Campaign)
breakers = table(Breaker)
job_events = table(JobEvent)


class IllegalTransition(Conflict):
    """A job state change the state machine (``outdial.models.TRANSITIONS``) does not allow: a bug."""


def check(edge: Edge, source: JobState, target: JobState) -> None:
    """Raise unless ``source -> target`` is a transition of the table, performed by ``edge``."""
    if TRANSITIONS.get((source, target)) is not edge:
        raise IllegalTransition(f"{edge}: {source} -> {target} is not a transition of the job state machine")


_EVENT_COLUMNS = ("job_id", "from_state", "to_state", "reason", "attempt", "at")
# What a follow-on statement (the attempt of ``begin_dial``) builds from the moved rows.
Then = Callable[[FromClause], ReturningInsert[Any] | Select[Any]]
# Statements of a fixed shape (see ``transition``'s ``shape``), built once per process: building,
# and keying SQLAlchemy's compiled cache on, a fresh expression tree cost more CPU per dispatch
# than the rest of its database work. Bound to values at execution; the SQL sent is the same.
_SHAPED: dict[tuple[Any, ...], Any] = {}
# The job a shaped single-job statement moves (bound per call).
JOB_ID = bindparam("_job_id", type_=BigInteger())


def transition(
    conn: Connection,
    edge: Edge,
    source: JobState,
    target: JobState,
    now: datetime,
    where: Sequence[ColumnElement[bool]],
    reason: str | None = None,
    values: Mapping[str, Any] | None = None,
    returning: Sequence[Column[Any]] = (),
    then: Then | None = None,
    *,
    shape: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Sequence[AnyRow]:
    """The one place a job's state changes: ``source -> target`` for the jobs ``where`` selects
    that are still in ``source``, with one ``job_events`` row per job moved, in the caller's
    transaction. The moved rows (``id``, ``attempts_used`` and ``returning``), or ``then``'s.

    An edge the table does not hold raises before anything is written. On PostgreSQL the
    update, the events and ``then`` are one statement (data-modifying CTEs): no round trip
    is added to the dispatch path.

    ``now``, ``reason`` and the plain values of ``values`` are always bound. A caller on the
    hot path names the statement's ``shape``: the same name must always come with the same
    ``where`` (made of ``bindparam``s, their values in ``params``), value keys (and SQL
    expressions among them), ``returning`` and ``then``; the statement is then built once.
    """
    check(edge, source, target)
    values = dict(values or {})
    bound = {**(params or {}), "_now": now, "_reason": reason}
    setting: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, ClauseElement):
            setting[name] = value
        else:
            setting[name] = bindparam(f"_v_{name}", type_=jobs.c[name].type)
            bound[f"_v_{name}"] = value
    postgres = conn.dialect.name == "postgresql"
    key = None if shape is None else (shape, postgres, edge, source, target, tuple(sorted(setting)))
    if postgres:
        statement = _SHAPED.get(key) if key is not None else None
        if statement is None:
            statement = _postgres_transition(source, target, where, setting, returning, then)
            if key is not None:
                _SHAPED[key] = statement
        return conn.execute(statement, bound).all()
    # SQLite runs no data-modifying CTE: the same statements in turn (in-process, no round trip).
    rows = conn.execute(_moving(source, target, where, setting, returning), bound).all()
    if rows:
        conn.execute(
            insert(job_events),
            [
                {"job_id": r.id, "from_state": source, "to_state": target, "reason": reason}
                | {"attempt": r.attempts_used, "at": now}
                for r in rows
            ],
        )
    if then is None or not rows:
        return rows if then is None else []
    moved = select(jobs).where(jobs.c.id.in_([r.id for r in rows])).subquery("moved")
    return conn.execute(then(moved), bound).all()


def _moving(
    source: JobState,
    target: JobState,
    where: Sequence[ColumnElement[bool]],
    setting: Mapping[str, Any],
    returning: Sequence[Column[Any]],
) -> Any:
    """The conditional UPDATE of a transition, with ``_now`` to bind."""
    return (
        update(jobs)
        .where(jobs.c.state == source, *where)
        .values(state=target, state_changed_at=bindparam("_now", type_=jobs.c.state_changed_at.type), **setting)
        .returning(jobs.c.id, jobs.c.attempts_used, *returning)
    )


def _postgres_transition(
    source: JobState,
    target: JobState,
    where: Sequence[ColumnElement[bool]],
    setting: Mapping[str, Any],
    returning: Sequence[Column[Any]],
    then: Then | None,
) -> Any:
    """``transition``'s one statement on PostgreSQL, with ``_now`` and ``_reason`` to bind."""
    moved = _moving(source, target, where, setting, returning).cte("moved")
    logged = (
        insert(job_events)
        .from_select(
            _EVENT_COLUMNS,
            select(
                moved.c.id,
                literal(source.value, String),
                literal(target.value, String),
                bindparam("_reason", type_=Text()),
                moved.c.attempts_used,
                bindparam("_now", type_=job_events.c.at.type),
            ),
        )
        .cte("logged")
    )
    final = then(moved) if then is not None else select(moved)
    return final.add_cte(moved, logged)


def _move(
    conn: Connection,
    edge: Edge,
    job_id: int,
    source: JobState,
    target: JobState,
    now: datetime,
    why: str | None = None,
    **values: Any,
) -> bool:
    """One job through ``edge`` (``why`` goes to its event); False if it was no longer in ``source``."""
    moved = transition(
        conn, edge, source, target, now, (jobs.c.id == JOB_ID,), why, values, shape="one", params={"_job_id": job_id}
    )
    return bool(moved)


def job_events_of(conn: Connection, job_id: int) -> Sequence[AnyRow]:
    """A job's history, oldest first."""
    return conn.execute(select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)).all()


# The edges, by name (``outdial.models.TRANSITIONS`` says which goes from where) -----------


def claim(conn: Connection, job_ids: Sequence[int], now: datetime) -> list[int]:
    """``scheduled -> queued`` for those of ``job_ids`` still scheduled; the ids this call moved."""
    if not job_ids:
        return []
    moved = transition(conn, Edge.CLAIM, JobState.SCHEDULED, JobState.QUEUED, now, (jobs.c.id.in_(job_ids),))
    return [int(r.id) for r in moved]


def resend(conn: Connection, job_id: int, seen_at: datetime, now: datetime) -> bool:
    """Take over a stale queued job for re-sending, unless someone else did first."""
    where = (jobs.c.id == job_id, jobs.c.state_changed_at == seen_at)
    reason = "queued lease ran out: sent again"
    return bool(transition(conn, Edge.RESEND, JobState.QUEUED, JobState.QUEUED, now, where, reason))


def carry_over(conn: Connection, job_id: int, due: datetime, window_end: datetime | None, now: datetime) -> bool:
    """A scheduled job claimed after its window closed: due at the next window's opening."""
    reason = "window closed: carried over"
    return _move(
        conn,
        Edge.CARRY_OVER,
        job_id,
        JobState.SCHEDULED,
        JobState.SCHEDULED,
        now,
        reason,
        next_due_at=due,
        window_end=window_end,
    )


def postpone(conn: Connection, job_id: int, now: datetime, why: str, **values: Any) -> bool:
    """A queued job not dialled now (paced, campaign paused, window closed): back to scheduled, same attempt."""
    return _move(conn, Edge.POSTPONE, job_id, JobState.QUEUED, JobState.SCHEDULED, now, why, **values)


def accept(conn: Connection, job_id: int, call_id: str, now: datetime) -> bool:
    """``dialing -> accepted``: the provider took the call and named it."""
    reason = f"call {call_id}"
    return _move(
        conn,
        Edge.ACCEPT,
        job_id,
        JobState.DIALING,
        JobState.ACCEPTED,
        now,
        reason,
        provider_call_id=call_id,
        transport_retries=0,
    )


def schedule_retry(
    conn: Connection, job_id: int, source: JobState, now: datetime, why: str | None, **values: Any
) -> bool:
    """Scheduled again after a call: a resend after transport trouble, or the next attempt."""
    return _move(conn, Edge.SCHEDULE_RETRY, job_id, source, JobState.SCHEDULED, now, why, **values)


def mark_unknown(conn: Connection, job_id: int, source: JobState, now: datetime, reason: str) -> bool:
    """The call may or may not have been placed: ``unknown``, never redialled blindly."""
    return _move(conn, Edge.MARK_UNKNOWN, job_id, source, JobState.UNKNOWN, now, reason, reason=reason)


def record_call(conn: Connection, job_id: int, call_id: str, now: datetime) -> bool:
    """An ``unknown`` job whose worker got the provider's call id after the dialing lease gave up on
    it: it stays ``unknown`` (never redialled), but names its call, so the outcome settles it."""
    where = (jobs.c.id == job_id, jobs.c.provider_call_id.is_(None))
    why = f"call {call_id} recorded late"
    values = {"provider_call_id": call_id}
    return bool(transition(conn, Edge.RECORD_CALL, JobState.UNKNOWN, JobState.UNKNOWN, now, where, why, values))


def complete(conn: Connection, job_id: int, source: JobState, now: datetime, why: str | None, **values: Any) -> bool:
    return _move(conn, Edge.COMPLETE, job_id, source, JobState.COMPLETED, now, why, **values)


def exhaust(conn: Connection, job_id: int, source: JobState, now: datetime, why: str | None, **values: Any) -> bool:
    return _move(conn, Edge.EXHAUST, job_id, source, JobState.EXHAUSTED, now, why, **values)


def expire(conn: Connection, job_id: int, source: JobState, now: datetime, why: str | None, **values: Any) -> bool:
    return _move(conn, Edge.EXPIRE, job_id, source, JobState.EXPIRED, now, why, **values)


def reject(conn: Connection, job_id: int, source: JobState, now: datetime, why: str | None, **values: Any) -> bool:
    return _move(conn, Edge.REJECT, job_id, source, JobState.REJECTED, now, why, **values)


def cancel(conn: Connection, job_id: int, source: JobState, now: datetime, reason: str = "cancelled") -> bool:
    return _move(conn, Edge.CANCEL, job_id, source, JobState.CANCELLED, now, reason, reason=reason)


def suppress(conn: Connection, job_id: int, now: datetime, reason: str = "do_not_call") -> bool:
    return _move(conn, Edge.SUPPRESS, job_id, JobState.QUEUED, JobState.SUPPRESSED, now, reason, reason=reason)


class EdgeMove(Protocol):
    def __call__(
        self, conn: Connection, job_id: int, source: JobState, now: datetime, why: str | None, **values: Any
    ) -> bool: ...


_SETTLING: dict[JobState, EdgeMove] = {
    JobState.COMPLETED: complete,
    JobState.SCHEDULED: schedule_retry,
    JobState.EXHAUSTED: exhaust,
    JobState.EXPIRED: expire,
    JobState.REJECTED: reject,
}


def settle(
    conn: Connection,
    job_id: int,
    source: JobState,
    target: JobState,
    now: datetime,
    reason: str | None,
    why: str | None = None,
    **values: Any,
) -> bool:
    """Where the retry policy or the timing rules sent the job: complete, schedule_retry, exhaust,
    expire or reject. The job's ``reason`` becomes ``reason``; its event says ``why`` (or ``reason``)."""
    edge = _SETTLING.get(target)
    if edge is None:
        raise IllegalTransition(f"{source} -> {target} is not where a call or a closed window can lead")
    return edge(conn, job_id, source, now, why or reason, reason=reason, **values)


def insert_job(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one())


def job_by_idempotency_key(conn: Connection, key: str) -> int | None:
    found = conn.execute(select(jobs.c.id).where(jobs.c.idempotency_key == key)).scalar()
    return int(found) if found is not None else None


def get_job(conn: Connection, job_id: int) -> AnyRow | None:
    return conn.execute(select(jobs).where(jobs.c.id == job_id)).first()


# Built once (bound per call): the dispatch path's reads and writes run on every call.
_JOB_TO_DISPATCH = (
    select(
        jobs,
        exists().where(dnc.c.phone == jobs.c.to_number).label("do_not_call"),
        campaigns.c.state.label("campaign_state"),
        campaigns.c.calls_per_minute.label("campaign_calls_per_minute"),
    )
    .select_from(jobs.outerjoin(campaigns, campaigns.c.id == jobs.c.campaign_id))
    .where(jobs.c.id == JOB_ID)
)


def job_to_dispatch(conn: Connection, job_id: int) -> AnyRow | None:
    """The job, with ``do_not_call`` (whether its number is on the list) and its campaign's
    ``campaign_state`` and ``campaign_calls_per_minute`` (None without a campaign): one query for all."""
    return conn.execute(_JOB_TO_DISPATCH, {"_job_id": job_id}).first()


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


def note_window(conn: Connection, job_id: int, window_end: datetime | None) -> None:
    """Record how far a scheduled job's window was computed (not a state change)."""
    conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.state == JobState.SCHEDULED).values(window_end=window_end)
    )


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


# ``begin_dial``'s statement, bound per call: the job as it was read ...
_BEGIN_DIAL_AS_READ = (
    jobs.c.id == JOB_ID,
    jobs.c.attempts_used == bindparam("_attempts_used", type_=Integer()),
    jobs.c.transport_retries == bindparam("_transport_retries", type_=Integer()),
)
# ... a resend keeps its attempt number, anything else takes the next one ...
_BEGIN_DIAL_NUMBER = case(
    ((jobs.c.transport_retries > 0) & (jobs.c.attempts_used > 0), jobs.c.attempts_used),
    else_=jobs.c.attempts_used + 1,
)


def _attempt_row(moved: FromClause) -> ReturningInsert[Any]:
    """... and its attempt row, with the job's request count taken inside the INSERT (one round trip less)."""
    seq = select(func.count() + 1).where(attempts.c.job_id == moved.c.id).scalar_subquery()
    row = select(
        moved.c.id,
        moved.c.attempts_used,
        seq,
        moved.c.account,
        bindparam("_provider", type_=String()),
        moved.c.next_due_at,
        bindparam("_now", type_=attempts.c.requested_at.type),
    )
    columns = ("job_id", "number", "seq", "account", "provider", "due_at", "requested_at")
    return insert(attempts).from_select(columns, row).returning(attempts.c.id, attempts.c.number)


def begin_dial(conn: Connection, job: AnyRow, provider: str, now: datetime) -> DialStart | None:
    """``queued -> dialing`` and the attempt row, in the caller's transaction; None if the job moved on.

    The update holds only if the job is still as ``job`` was read: queued for the same
    attempt (``attempts_used``) and resend (``transport_retries``). A worker that read the
    job, then paused while it was dialled and queued again for a later attempt, changes
    nothing. The attempt number is the one the updated row gives back, never the old read.

    After this commits, a request may leave at any moment: a crash from here on
    leaves the job in ``dialing`` for reconciliation, never for a blind redial.
    """
    why = f"provider {provider}"
    as_read = {"_job_id": job.id, "_attempts_used": job.attempts_used, "_transport_retries": job.transport_retries}
    started = transition(
        conn,
        Edge.BEGIN_DIAL,
        JobState.QUEUED,
        JobState.DIALING,
        now,
        _BEGIN_DIAL_AS_READ,
        why,
        {"attempts_used": _BEGIN_DIAL_NUMBER},
        (jobs.c.account, jobs.c.next_due_at),
        _attempt_row,
        shape="begin_dial",
        params=as_read | {"_provider": provider},
    )
    if not started:
        return None
    attempt_id, attempt_number = started[0]
    return DialStart(
        job.id, int(attempt_id), int(attempt_number), job.account, job.to_number, dict(job.variables), job.next_due_at
    )


_ATTEMPT_ID = bindparam("_attempt_id", type_=BigInteger())


@cache
def _record_response(columns: tuple[str, ...]) -> Any:
    bound = {c: bindparam(f"_v_{c}", type_=attempts.c[c].type) for c in columns}
    return update(attempts).where(attempts.c.id == _ATTEMPT_ID).values(bound)


def record_response(conn: Connection, attempt_id: int, **values: Any) -> None:
    statement = _record_response(tuple(sorted(values)))
    conn.execute(statement, {"_attempt_id": attempt_id} | {f"_v_{c}": v for c, v in values.items()})


@cache
def _answered(columns: tuple[str, ...]) -> Then:
    """``accept``'s follow-on on PostgreSQL: the attempt's answer written, and the events waiting for
    the call id read, in the same statement. One row per waiting event (or one, its columns null)."""

    def then(moved: FromClause) -> Select[Any]:
        bound = {c: bindparam(f"_r_{c}", type_=attempts.c[c].type) for c in columns}
        answered = update(attempts).where(attempts.c.id == _ATTEMPT_ID).values(bound).returning(attempts.c.id)
        moved_count = select(func.count()).select_from(moved).scalar_subquery().label("_moved")
        waiting = UNMATCHED.subquery("waiting")
        one = select(literal(1).label("_one")).subquery("one")
        # A data-modifying CTE runs whether or not the job moved: the answer is always recorded.
        return (
            select(moved_count, waiting)
            .select_from(one.outerjoin(waiting, true()))
            .order_by(waiting.c.id)
            .add_cte(answered.cte("answered"))
        )

    return then


@dataclass(frozen=True)
class Answered:
    """An accepted call's answer recorded: whether the job moved to ``accepted`` (it had not, when the
    dialing lease had already declared it unknown), and the events that arrived before its call id."""

    moved: bool
    waiting: Sequence[AnyRow]


def accept_answer(
    conn: Connection,
    job_id: int,
    attempt_id: int,
    call_id: str,
    now: datetime,
    provider: str,
    account: str,
    **response: Any,
) -> Answered:
    """:func:`record_response` of the attempt, :func:`accept` of its job, and the account's events that
    wait for ``call_id`` (``events.unmatched_events``): one statement on PostgreSQL, the answer of every
    accepted dispatch. The events read are those committed when the statement began; one committed
    while it runs is left to the scheduler's sweep."""
    waiting_for = {"_provider": provider, "_account": account, "_call_id": call_id}
    if conn.dialect.name != "postgresql":
        record_response(conn, attempt_id, **response)
        moved = accept(conn, job_id, call_id, now)
        return Answered(moved, conn.execute(UNMATCHED, waiting_for).all())
    columns = tuple(sorted(response))
    rows = transition(
        conn,
        Edge.ACCEPT,
        JobState.DIALING,
        JobState.ACCEPTED,
        now,
        (jobs.c.id == JOB_ID,),
        f"call {call_id}",
        {"provider_call_id": call_id, "transport_retries": 0},
        then=_answered(columns),
        shape="accept_answer:" + ",".join(columns),
        params={"_job_id": job_id, "_attempt_id": attempt_id}
        | waiting_for
        | {f"_r_{c}": v for c, v in response.items()},
    )
    return Answered(bool(rows[0]._moved), [row for row in rows if row.id is not None])


def open_attempt(conn: Connection, job_id: int) -> AnyRow | None:
    """The job's newest attempt."""
    return conn.execute(
        select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.seq.desc()).limit(1)
    ).first()


def attempt_for_call(conn: Connection, provider: str, account: str | None, call_id: str) -> AnyRow | None:
    """The attempt that placed the call: by its call id, or by a second id learnt later; only on
    ``account`` (the one an event came in on: its secret vouches for its own calls, no other's)."""
    on_account = [attempts.c.provider == provider]
    if account is not None:
        on_account.append(attempts.c.account == account)
    found = conn.execute(select(attempts).where(*on_account, attempts.c.provider_call_id == call_id)).first()
    if found is not None:
        return found
    return conn.execute(select(attempts).where(*on_account, attempts.c.provider_ref == call_id).limit(1)).first()


def set_call_ref(conn: Connection, provider: str, call_id: str, ref: str) -> bool:
    """Record a second id of the call placed as ``call_id`` (set once); False if nothing changed."""
    result = conn.execute(
        update(attempts)
        .where(
            attempts.c.provider == provider,
            attempts.c.provider_call_id == call_id,
            or_(attempts.c.provider_ref.is_(None), attempts.c.provider_ref != ref),
        )
        .values(provider_ref=ref)
    )
    return result.rowcount > 0


def attempt_by_number(conn: Connection, job_id: int, number: int) -> AnyRow | None:
    """The newest request of attempt ``number`` of a job."""
    return conn.execute(
        select(attempts)
        .where(attempts.c.job_id == job_id, attempts.c.number == number)
        .order_by(attempts.c.seq.desc())
        .limit(1)
    ).first()


def adopt_call_id(conn: Connection, attempt_id: int, job_id: int, call_id: str) -> bool:
    """Give an ``unknown`` job whose create-call answer was lost the call id an event names."""
    if (
        conn.execute(
            update(attempts)
            .where(attempts.c.id == attempt_id, attempts.c.provider_call_id.is_(None))
            .values(provider_call_id=call_id)
        ).rowcount
        != 1
    ):
        return False
    moved = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.UNKNOWN, jobs.c.provider_call_id.is_(None))
        .values(provider_call_id=call_id)
    )
    return moved.rowcount == 1


def open_calls_to(conn: Connection, account: str, to_number: str) -> Sequence[AnyRow]:
    """The newest attempts of jobs on ``account`` to ``to_number`` still waiting for an outcome."""
    query = (
        select(attempts)
        .join(jobs, (jobs.c.id == attempts.c.job_id) & (jobs.c.provider_call_id == attempts.c.provider_call_id))
        .where(
            jobs.c.account == account,
            jobs.c.to_number == to_number,
            jobs.c.state.in_([JobState.ACCEPTED, JobState.UNKNOWN]),
            attempts.c.outcome.is_(None),
        )
        .limit(2)
    )
    return conn.execute(query).all()


def settle_attempt(
    conn: Connection,
    attempt_id: int,
    outcome: str,
    raw_status: str,
    ended_at: datetime,
    result_data: Mapping[str, Any] | None = None,
) -> bool:
    """Give an attempt its outcome (and what the provider reported) once; False if it already had one."""
    result = conn.execute(
        update(attempts)
        .where(attempts.c.id == attempt_id, attempts.c.outcome.is_(None))
        .values(outcome=outcome, raw_status=raw_status, ended_at=ended_at, result_data=dict(result_data or {}) or None)
    )
    return result.rowcount == 1


def add_result_data(conn: Connection, attempt_id: int, data: Mapping[str, Any]) -> bool:
    """Merge what a later event reported about a call into its settled attempt's result data, in one
    statement: each key given replaces its value, the others stay. Conditional on the attempt having
    its outcome (the first event's data is written with it); the outcome is never touched. Any
    emptiness rule is the caller's: every key given is written. False if no row changed."""
    if not data:
        return False
    current = attempts.c.result_data
    if conn.dialect.name == "postgresql":
        # ``||`` on jsonb replaces top-level keys; a stored JSON ``null`` (or SQL NULL) counts as {}.
        stored = cast(current, JSONB)
        base = case((func.jsonb_typeof(stored) == "object", stored), else_=cast(literal("{}"), JSONB))
        merged: ColumnElement[Any] = cast(base.op("||")(cast(literal(json.dumps(dict(data))), JSONB)), JSON)
    else:
        # json_set, one path per key: the same top-level replacement (json_patch would merge nested
        # objects and drop nested nulls).
        base = case((func.json_type(current) == "object", current), else_=literal("{}"))
        pairs: list[Any] = []
        for key, value in data.items():
            pairs += [f'$."{key}"', func.json(literal(json.dumps(value)))]
        merged = func.json_set(base, *pairs)
    result = conn.execute(
        update(attempts)
        .where(attempts.c.id == attempt_id, attempts.c.outcome.is_not(None))
        .values(result_data=type_coerce(merged, JSON))
    )
    return result.rowcount == 1


# Campaign-level -------------------------------------------------------------------------


def cancel_jobs(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Cancel every job of a campaign that has not been handed to a worker: one statement per state left."""
    where = (jobs.c.campaign_id == campaign_id,)
    return sum(
        len(transition(conn, Edge.CANCEL, source, JobState.CANCELLED, now, where, "cancelled", {"reason": "cancelled"}))
        for source in (JobState.SCHEDULED, JobState.QUEUED)
    )


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
        .where(jobs.c.campaign_id == campaign_id, attempts.c.result == Verdict.ACCEPTED)
        .group_by(jobs.c.to_number)
    )
    return {str(n): int(c) for n, c in conn.execute(query)}


def awaiting_outcome(
    conn: Connection,
    accepted_before: datetime,
    checked_before: datetime,
    limit: int,
    prompt_accounts: Sequence[str] = (),
) -> Sequence[AnyRow]:
    """Calls whose outcome has not come: accepted a while ago, or ``unknown`` with a call id to look up.

    On ``prompt_accounts`` (providers whose webhooks name a second id of the call), an accepted
    call is looked up at once until that id is known, so no webhook waits long unmatched.
    """
    not_checked_lately = or_(jobs.c.checked_at.is_(None), jobs.c.checked_at < checked_before)
    ref_unknown = ~exists().where(
        attempts.c.job_id == jobs.c.id,
        attempts.c.provider_call_id == jobs.c.provider_call_id,
        attempts.c.provider_ref.is_not(None),
    )
    query = (
        select(jobs.c.id, jobs.c.account, jobs.c.provider_call_id, jobs.c.state)
        .where(
            jobs.c.provider_call_id.is_not(None),
            not_checked_lately,
            or_(
                (jobs.c.state == JobState.ACCEPTED) & (jobs.c.state_changed_at < accepted_before),
                jobs.c.state == JobState.UNKNOWN,
                (jobs.c.state == JobState.ACCEPTED) & jobs.c.account.in_(list(prompt_accounts)) & ref_unknown,
            ),
        )
        .order_by(jobs.c.checked_at.is_not(None), jobs.c.checked_at)
        .limit(limit)
    )
    return conn.execute(query).all()


def lacking_results(
    conn: Connection,
    wanted: Mapping[str, Sequence[str]],
    outcomes: Sequence[str],
    placed_after: datetime,
    checked_before: datetime,
    limit: int,
) -> Sequence[AnyRow]:
    """Ended jobs whose call settled without result fields that only a status look-up reports.

    ``wanted`` maps an account to those fields (keys of ``result_data``); a job is due when its
    call (the attempt with its call id) settled with one of ``outcomes``, was placed after
    ``placed_after``, lacks one of its account's fields, and has not been looked up since it
    ended nor since ``checked_before``: each call a bounded few times at most.
    """
    if not wanted:
        return []
    lacks = [
        (attempts.c.account == account) & or_(*(attempts.c.result_data[key].as_string().is_(None) for key in keys))
        for account, keys in wanted.items()
        if keys
    ]
    if not lacks:
        return []
    query = (
        select(jobs.c.id, jobs.c.account, jobs.c.provider_call_id, jobs.c.state)
        .select_from(
            attempts.join(
                jobs, (jobs.c.id == attempts.c.job_id) & (jobs.c.provider_call_id == attempts.c.provider_call_id)
            )
        )
        .where(
            # ix_attempts_requested_at bounds the scan to the last calls, however many jobs ended before.
            attempts.c.requested_at > placed_after,
            attempts.c.outcome.in_(list(outcomes)),
            jobs.c.state.in_(sorted(TERMINAL_STATES - {JobState.UNKNOWN})),
            or_(
                jobs.c.checked_at.is_(None),
                # Not asked since it ended (the poll whose own look-up ended it asks once more: a
                # provider may add its recording or summary a little after the end).
                jobs.c.checked_at <= attempts.c.ended_at,
                jobs.c.checked_at < checked_before,
            ),
            or_(*lacks),
        )
        .order_by(jobs.c.checked_at.is_not(None), jobs.c.checked_at)
        .limit(limit)
    )
    return conn.execute(query).all()


def mark_checked(conn: Connection, job_ids: Sequence[int], now: datetime) -> None:
    if job_ids:
        conn.execute(update(jobs).where(jobs.c.id.in_(list(job_ids))).values(checked_at=now))


# Operators: a campaign's jobs listed, retried and cancelled one by one -------------------------


def campaign_jobs(
    conn: Connection,
    campaign_id: int,
    *,
    states: Sequence[str] = (),
    outcomes: Sequence[str] = (),
    after_id: int = 0,
    limit: int = 50,
) -> Sequence[AnyRow]:
    """A page of a campaign's jobs by id after ``after_id``: keyset paging, as fast on the last
    page as on the first (``ix_jobs_campaign_state`` serves the state filter)."""
    query = select(jobs).where(jobs.c.campaign_id == campaign_id, jobs.c.id > after_id).order_by(jobs.c.id).limit(limit)
    if states:
        query = query.where(jobs.c.state.in_(list(states)))
    if outcomes:
        query = query.where(jobs.c.last_outcome.in_(list(outcomes)))
    return conn.execute(query).all()


def latest_attempts(conn: Connection, job_ids: Sequence[int]) -> dict[int, AnyRow]:
    """Each job's newest attempt (all its columns: whatever result data the provider gave)."""
    if not job_ids:
        return {}
    newest = (
        select(attempts.c.job_id, func.max(attempts.c.seq).label("seq"))
        .where(attempts.c.job_id.in_(list(job_ids)))
        .group_by(attempts.c.job_id)
        .subquery()
    )
    query = select(attempts).join(newest, (newest.c.job_id == attempts.c.job_id) & (newest.c.seq == attempts.c.seq))
    return {int(row.job_id): row for row in conn.execute(query)}


def campaign_job_ids(conn: Connection, campaign_id: int, states: Sequence[str], after_id: int, limit: int) -> list[int]:
    """Ids of a campaign's jobs in ``states``, by id after ``after_id``."""
    query = (
        select(jobs.c.id)
        .where(jobs.c.campaign_id == campaign_id, jobs.c.state.in_(list(states)), jobs.c.id > after_id)
        .order_by(jobs.c.id)
        .limit(limit)
    )
    return [int(r[0]) for r in conn.execute(query)]


def retry_job(
    conn: Connection,
    job_id: int,
    expected: Sequence[str],
    due: datetime,
    window_end: datetime | None,
    now: datetime,
    reason: str,
) -> bool:
    """An ended job (``unknown`` above all) scheduled again at a person's request: one more
    attempt, due at ``due``. Conditional on the job still being in one of ``expected``."""
    values = {
        "next_due_at": due,
        "window_end": window_end,
        # The next request is a new attempt, not a re-send of the last one.
        "transport_retries": 0,
        "checked_at": None,
        "reason": reason,
    }
    return any(retry_by_hand(conn, job_id, JobState(source), now, reason, **values) for source in expected)


def retry_by_hand(conn: Connection, job_id: int, source: JobState, now: datetime, why: str, **values: Any) -> bool:
    """An ended job scheduled again, only ever at a person's request (``unknown -> scheduled`` is
    the schedule_retry edge an outcome takes too; ``why`` names the person)."""
    edge = Edge.SCHEDULE_RETRY if source == JobState.UNKNOWN else Edge.RETRY_BY_HAND
    return _move(conn, edge, job_id, source, JobState.SCHEDULED, now, why, **values)


def cancel_job(conn: Connection, job_id: int, expected: Sequence[str], now: datetime, reason: str) -> bool:
    """One job cancelled by a person, unless it has left ``expected`` (e.g. a worker took it)."""
    return any(
        _move(conn, Edge.CANCEL, job_id, JobState(source), JobState.CANCELLED, now, reason, reason=reason)
        for source in expected
    )
