"""The job state machine: every edge of ``TRANSITIONS`` is performed by its named function and
leaves one ``job_events`` row; every other change raises and writes nothing. On both databases."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event

from outdial.models import TRANSITIONS, Edge, JobState
from outdial.store import AnyRow
from outdial.store import events as event_store
from outdial.store import jobs as job_store

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)

# How each named function is called to move job ``j`` out of ``source`` (at LATER).
Call = Callable[[Connection, AnyRow, JobState], Any]
CALLS: dict[Edge, Call] = {
    Edge.CLAIM: lambda c, j, s: job_store.claim(c, [j.id], LATER),
    Edge.RESEND: lambda c, j, s: job_store.resend(c, j.id, j.state_changed_at, LATER),
    Edge.CARRY_OVER: lambda c, j, s: job_store.carry_over(c, j.id, LATER + timedelta(days=1), None, LATER),
    Edge.POSTPONE: lambda c, j, s: job_store.postpone(c, j.id, LATER, "paced: rate"),
    Edge.BEGIN_DIAL: lambda c, j, s: job_store.begin_dial(c, j, "callkaro", LATER),
    Edge.ACCEPT: lambda c, j, s: job_store.accept(c, j.id, "call-1", LATER),
    Edge.RECORD_CALL: lambda c, j, s: job_store.record_call(c, j.id, "call-1", LATER),
    Edge.SCHEDULE_RETRY: lambda c, j, s: job_store.schedule_retry(c, j.id, s, LATER, "no_answer"),
    Edge.MARK_UNKNOWN: lambda c, j, s: job_store.mark_unknown(c, j.id, s, LATER, "lease ran out"),
    Edge.COMPLETE: lambda c, j, s: job_store.complete(c, j.id, s, LATER, "completed"),
    Edge.EXHAUST: lambda c, j, s: job_store.exhaust(c, j.id, s, LATER, "busy"),
    Edge.EXPIRE: lambda c, j, s: job_store.expire(c, j.id, s, LATER, "window closed"),
    Edge.REJECT: lambda c, j, s: job_store.reject(c, j.id, s, LATER, "no_callable_window"),
    Edge.CANCEL: lambda c, j, s: job_store.cancel(c, j.id, s, LATER),
    Edge.SUPPRESS: lambda c, j, s: job_store.suppress(c, j.id, LATER),
    Edge.RETRY_BY_HAND: lambda c, j, s: job_store.retry_by_hand(c, j.id, s, LATER, "retried by cli:ops"),
}


def job_in(conn: Connection, state: JobState) -> AnyRow:
    values = {"account": "ck", "to_number": "+12125551234", "state": state, "next_due_at": NOW}
    job = job_store.get_job(conn, job_store.insert_job(conn, values | {"state_changed_at": NOW}))
    assert job is not None
    return job


def test_the_table_names_every_edge_and_each_edge_has_its_function() -> None:
    assert set(TRANSITIONS.values()) == set(Edge) == set(CALLS)
    for edge in Edge:
        assert callable(getattr(job_store, edge.value)), edge
    # Nothing leaves a final state on its own: an unknown call is settled by its outcome, and
    # an ended job is dialled again or cancelled only by a person (RETRY_BY_HAND, CANCEL).
    automatic = {source for (source, _), edge in TRANSITIONS.items() if edge is not Edge.RETRY_BY_HAND}
    assert automatic == {JobState.SCHEDULED, JobState.QUEUED, JobState.DIALING, JobState.ACCEPTED, JobState.UNKNOWN}
    assert {target for (_, target), edge in TRANSITIONS.items() if edge is Edge.RETRY_BY_HAND} == {JobState.SCHEDULED}


@pytest.mark.parametrize(("source", "target"), list(TRANSITIONS), ids=lambda s: str(s))
def test_every_edge_moves_the_job_and_writes_its_event(engine: Engine, source: JobState, target: JobState) -> None:
    edge = TRANSITIONS[source, target]
    with engine.begin() as conn:
        job = job_in(conn, source)
        assert CALLS[edge](conn, job, source)
    with engine.connect() as conn:
        moved = job_store.get_job(conn, job.id)
        events = job_store.job_events_of(conn, job.id)
    assert moved is not None and moved.state == target and moved.state_changed_at == LATER
    assert [(e.from_state, e.to_state, e.at, e.attempt) for e in events] == [
        (source, target, LATER, moved.attempts_used)
    ]
    # The same edge again finds the job gone from ``source`` (or, for a self-edge, no longer as
    # read): nothing happens, and no second event is written.
    if source != target:
        with engine.begin() as conn:
            assert not CALLS[edge](conn, job, source)
            assert len(job_store.job_events_of(conn, job.id)) == 1


ILLEGAL = [pair for pair in itertools.product(JobState, JobState) if pair not in TRANSITIONS]


def test_every_illegal_edge_raises_and_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        jobs = {state: job_in(conn, state) for state in JobState}
    for source, target in ILLEGAL:
        for edge in Edge:
            with engine.begin() as conn, pytest.raises(job_store.IllegalTransition):
                job_store.transition(conn, edge, source, target, LATER, (job_store.jobs.c.id == jobs[source].id,))
    # A legal pair under another edge's name raises too: the table says which function does what.
    for (source, target), right in TRANSITIONS.items():
        for edge in set(Edge) - {right}:
            with pytest.raises(job_store.IllegalTransition):
                job_store.check(edge, source, target)
    # The named functions refuse a source their edge does not leave from.
    for edge, call in CALLS.items():
        sources = {s for (s, _), e in TRANSITIONS.items() if e is edge}
        for source in set(JobState) - sources:
            if edge in (Edge.CLAIM, Edge.RESEND, Edge.CARRY_OVER, Edge.POSTPONE, Edge.BEGIN_DIAL, Edge.ACCEPT):
                continue  # these fix their source: nothing to pass
            if edge in (Edge.RECORD_CALL, Edge.SUPPRESS):
                continue
            if edge is Edge.RETRY_BY_HAND and source is JobState.UNKNOWN:
                continue  # a person's retry of an unknown job takes its schedule_retry edge
            with engine.begin() as conn, pytest.raises(job_store.IllegalTransition):
                call(conn, jobs[source], source)
    with engine.connect() as conn:
        for state, job in jobs.items():
            after = job_store.get_job(conn, job.id)
            assert after is not None and after.state == state and after.state_changed_at == NOW
            assert job_store.job_events_of(conn, job.id) == []


def test_settle_goes_where_the_policy_says_and_refuses_the_rest(engine: Engine) -> None:
    with engine.begin() as conn:
        job = job_in(conn, JobState.ACCEPTED)
        with pytest.raises(job_store.IllegalTransition):
            job_store.settle(conn, job.id, JobState.ACCEPTED, JobState.DIALING, LATER, None)
        assert job_store.settle(conn, job.id, JobState.ACCEPTED, JobState.EXHAUSTED, LATER, "busy", "outcome busy")
        (event,) = job_store.job_events_of(conn, job.id)
        moved = job_store.get_job(conn, job.id)
    assert moved is not None and moved.state == JobState.EXHAUSTED and moved.reason == "busy"
    assert (event.from_state, event.to_state, event.reason) == ("accepted", "exhausted", "outcome busy")


def test_begin_dial_is_one_statement_on_postgresql(engine: Engine) -> None:
    """The dispatch hot path: ``queued -> dialing``, its event and the attempt row in one round trip
    on PostgreSQL (data-modifying CTEs); SQLite, in-process, runs them in turn."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with engine.begin() as conn:
        job = job_in(conn, JobState.QUEUED)
        event.listen(conn, "before_cursor_execute", count)
        start = job_store.begin_dial(conn, job, "callkaro", LATER)
        event.remove(conn, "before_cursor_execute", count)
        assert start is not None and start.number == 1
        assert [(e.from_state, e.to_state, e.attempt) for e in job_store.job_events_of(conn, job.id)] == [
            ("queued", "dialing", 1)
        ]
        assert [(a.number, a.seq, a.provider) for a in job_store.attempts_of(conn, job.id)] == [(1, 1, "callkaro")]
    assert len(statements) == (1 if engine.dialect.name == "postgresql" else 3), statements


def test_a_reused_statement_binds_each_calls_own_job_reason_and_values(engine: Engine) -> None:
    """Shaped statements are built once per process (``transition``'s ``shape``): each call must
    still move only its own job, as it was read, with its own time, reason and values."""
    with engine.begin() as conn:
        first, second, bystander = (job_in(conn, JobState.QUEUED) for _ in range(3))
        assert job_store.begin_dial(conn, first, "callkaro", NOW) is not None
        assert job_store.begin_dial(conn, second, "vapi", LATER) is not None
        # The same job as read before the move: its as-read guard no longer holds.
        assert job_store.begin_dial(conn, first, "callkaro", LATER) is None
        assert job_store.accept(conn, first.id, "call-a", NOW)
        assert job_store.accept(conn, second.id, "call-b", LATER)
        assert not job_store.accept(conn, second.id, "call-c", LATER)  # no longer dialing
    with engine.connect() as conn:
        a, b, c = (job_store.get_job(conn, j.id) for j in (first, second, bystander))
        assert a is not None and b is not None and c is not None
        assert (a.state, a.provider_call_id, a.attempts_used) == (JobState.ACCEPTED, "call-a", 1)
        assert (b.state, b.provider_call_id, b.attempts_used) == (JobState.ACCEPTED, "call-b", 1)
        assert c.state == JobState.QUEUED and c.attempts_used == 0
        reasons = [(e.to_state, e.reason) for e in job_store.job_events_of(conn, second.id)]
        assert reasons == [(JobState.DIALING, "provider vapi"), (JobState.ACCEPTED, "call call-b")]
        providers = [job_store.open_attempt(conn, j.id).provider for j in (first, second)]  # type: ignore[union-attr]
        assert providers == ["callkaro", "vapi"]


def test_accept_answer_records_the_attempt_accepts_and_reads_waiting_events_in_one_statement(
    engine: Engine,
) -> None:
    """The accepted dispatch's answer on PostgreSQL, one statement: the attempt's response, ``dialing ->
    accepted`` with its event, and the account's events that arrived before the call id. The response
    is recorded even when the job has moved on (the dialing lease declared it unknown)."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with engine.begin() as conn:
        dialing = [job_in(conn, JobState.QUEUED) for _ in range(2)]
        starts = [job_store.begin_dial(conn, job, "callkaro", NOW) for job in dialing]
        assert job_store.mark_unknown(conn, dialing[1].id, JobState.DIALING, NOW, "lease ran out")
        early = {
            "provider": "callkaro",
            "payload": "{}",
            "event_key": "k1",
            "kind": "webhook",
            "received_at": NOW,
            "applied": "unmatched",
        }
        for key, account in (("k1", "ck"), ("k2", "ck"), ("k3", "other")):  # another account's never counts
            event_store.store_event(
                conn, early | {"event_key": key, "account": account, "provider_call_id": f"call-{dialing[0].id}"}
            )
        event.listen(conn, "before_cursor_execute", count)
        results = [
            job_store.accept_answer(
                conn,
                job.id,
                start.attempt_id,
                f"call-{job.id}",
                LATER,
                "callkaro",
                "ck",
                http_status=201,
                result="accepted",
            )
            for job, start in zip(dialing, starts, strict=True)
            if start is not None
        ]
        event.remove(conn, "before_cursor_execute", count)
        assert [r.moved for r in results] == [True, False]
        assert [e.event_key for e in results[0].waiting] == ["k1", "k2"] and results[1].waiting == []
        for job in dialing:
            (attempt,) = job_store.attempts_of(conn, job.id)
            assert (attempt.http_status, attempt.result) == (201, "accepted")
        accepted = job_store.get_job(conn, dialing[0].id)
        assert accepted is not None
        assert (accepted.state, accepted.provider_call_id) == ("accepted", f"call-{dialing[0].id}")
        assert [e.to_state for e in job_store.job_events_of(conn, dialing[0].id)] == ["dialing", "accepted"]
        assert [e.to_state for e in job_store.job_events_of(conn, dialing[1].id)] == ["dialing", "unknown"]
    assert len(statements) == (2 if engine.dialect.name == "postgresql" else 7), statements
