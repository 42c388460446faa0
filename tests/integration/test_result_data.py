"""What a second event about a settled call reports is added to the call's result data (both databases).

The first event with an outcome settles the attempt and its job; a later one (a look-up after
the webhook, or the other way round) only adds what it knows about the call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from outdial.models import JobEvent, JobState
from outdial.services.outcomes import Applied, record_event
from outdial.services.providers.base import CallEvent, Outcome
from outdial.settings import Settings
from outdial.store import jobs as job_store
from tests.integration.conftest import accepted_call

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def accepted(engine: Engine, settings: Settings) -> int:
    """A job on the test CallKaro account whose call ``c1`` was accepted."""
    return accepted_call(engine, settings, NOW, number_of_retries=2)


def record(engine: Engine, settings: Settings, event: CallEvent, minutes: int) -> Applied:
    return record_event(engine, "callkaro", "ck", event, "{}", "webhook", NOW + timedelta(minutes=minutes), settings)


def history(engine: Engine, job_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(JobEvent.__table__.c.job_id == job_id)).scalar_one())


def test_a_later_event_adds_what_it_knows_and_changes_nothing_else(engine: Engine, settings: Settings) -> None:
    job_id = accepted(engine, settings)
    first = CallEvent("c1", "c1:ended", "CLIENT_INITIATED", Outcome.COMPLETED, data={"call_duration": 74})
    assert record(engine, settings, first, 1) == Applied.APPLIED
    moves = history(engine, job_id)
    # Another event about the call, disagreeing about how it went: its empty values say nothing,
    # its others are added (a newer value of the same key replaces the older).
    later = CallEvent(
        "c1",
        "c1:unavailable",
        "USER_UNAVAILABLE",
        Outcome.NO_ANSWER,
        data={
            "call_duration": None,
            "recording_url": "",
            "transcript": [],
            "summary": "Booked for Tuesday.",
            "analysis": {"intent": "book", "note": None},
            "silence_s": 0,
        },
    )
    assert record(engine, settings, later, 2) == Applied.DUPLICATE_OUTCOME
    # The same event delivered again (same key) may say more: that is added too.
    again = CallEvent("c1", "c1:ended", "CLIENT_INITIATED", Outcome.COMPLETED, data={"call_duration": 75, "x": "y"})
    assert record(engine, settings, again, 3) == Applied.DUPLICATE
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        [attempt] = job_store.attempts_of(conn, job_id)
    assert attempt.result_data == {
        "call_duration": 75,
        "summary": "Booked for Tuesday.",
        "analysis": {"intent": "book", "note": None},
        "silence_s": 0,
        "x": "y",
    }
    assert (attempt.outcome, attempt.raw_status) == (Outcome.COMPLETED, "CLIENT_INITIATED")
    assert job is not None and (job.state, job.last_outcome) == (JobState.COMPLETED, Outcome.COMPLETED)
    assert history(engine, job_id) == moves  # the job did not move again


def test_a_call_settled_without_result_data_takes_it_later(engine: Engine, settings: Settings) -> None:
    job_id = accepted(engine, settings)
    assert record(engine, settings, CallEvent("c1", "c1:look-up", "done", Outcome.COMPLETED), 1) == Applied.APPLIED
    webhook = CallEvent("c1", "c1:webhook", "CLIENT_INITIATED", Outcome.COMPLETED, data={"call_duration": 12})
    assert record(engine, settings, webhook, 2) == Applied.DUPLICATE_OUTCOME
    with engine.connect() as conn:
        [attempt] = job_store.attempts_of(conn, job_id)
    assert attempt.result_data == {"call_duration": 12} and attempt.raw_status == "done"


def test_nothing_is_added_to_a_call_still_waiting_for_its_outcome(engine: Engine, settings: Settings) -> None:
    job_id = accepted(engine, settings)
    with engine.begin() as conn:
        [attempt] = job_store.attempts_of(conn, job_id)
        assert not job_store.add_result_data(conn, attempt.id, {"call_duration": 5})
        [attempt] = job_store.attempts_of(conn, job_id)
    assert attempt.outcome is None and attempt.result_data is None
