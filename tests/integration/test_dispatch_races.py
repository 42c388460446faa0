"""Races between a worker and the rest of the engine (issue 15), reproduced step by step on both databases.

- A worker that read a job, then stalled (SIGSTOP, a long pacing wait) while the job was dialled,
  answered and queued again for a later attempt, must not dial with what it read: the budget holds.
- A job the dialing lease declared ``unknown`` whose worker then gets the call id records it, so the
  outcome settles the job; it is never redialled on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import respx
from sqlalchemy import Engine

from outdial.models import JobState
from outdial.scheduler.loop import Scheduler, TickReport
from outdial.services.dispatch import RACED, Dispatched, Dispatcher, Step
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.outcomes import Applied, record_event
from outdial.services.pacing.pacer import Gate, Pacer, SendTicket
from outdial.services.providers.accounts import load_accounts
from outdial.services.providers.base import CallEvent, Outcome
from outdial.settings import Settings
from outdial.store import jobs as job_store

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
URL = "http://callkaro.test/call/outbound"


class StallsAfterReading(Pacer):
    """A pacer that lets every call through, but runs ``meanwhile`` where the worker waits for its turn:
    between its read of the job and its ``queued -> dialing``."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        self.meanwhile = meanwhile

    def rates(self, *args: Any) -> list[Any]:
        return [object()]  # a limit applies: the worker takes the paced path

    def admit(self, *args: Any, **kwargs: Any) -> Gate:
        self.meanwhile()
        return Gate(True)

    def clear_to_send(self, *args: Any, **kwargs: Any) -> SendTicket:
        return SendTicket("s", None, 0, 0.0)  # the request would leave

    def sent(self, *args: Any) -> None:
        pass

    def after(self, *args: Any) -> None:
        pass


def make_job(engine: Engine, settings: Settings, retries: int) -> int:
    body = CallBody.model_validate(
        {"to_number": "+12125551234", "account": "ck", "timezone": "America/New_York", "number_of_retries": retries}
    )
    return enqueue_call(engine, body, NOW, settings).job_id


def claim(engine: Engine, settings: Settings, now: datetime) -> list[int]:
    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(now)
    return sent


def no_answer(engine: Engine, settings: Settings, call_id: str, at: datetime) -> Applied:
    event = CallEvent(call_id, f"{call_id}:call_ended", "USER_UNRESPONSIVE", Outcome.NO_ANSWER, at)
    return record_event(engine, "callkaro", "ck", event, "{}", "webhook", at, settings)


@respx.mock
def test_a_stale_worker_never_dials_a_job_queued_again_for_a_later_attempt(engine: Engine, settings: Settings) -> None:
    settings = settings.model_copy(update={"provider_read_timeout_s": 1.0})
    job_id = make_job(engine, settings, retries=1)  # a budget of two calls
    route = respx.post(URL).mock(side_effect=[httpx.Response(200, json={"call_sid": f"call-{n}"}) for n in (1, 2, 3)])
    accounts = load_accounts(settings.accounts_file)
    prompt = Dispatcher(engine, settings, accounts, httpx.Client())
    ended = NOW + timedelta(minutes=1)
    retry_due = ended + timedelta(minutes=30)

    def while_stalled() -> None:
        # Another delivery of the same task dials attempt 1, which goes unanswered; the retry
        # falls due and the job is queued again, for attempt 2.
        assert prompt.dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
        assert no_answer(engine, settings, "call-1", ended) is Applied.APPLIED
        assert claim(engine, settings, retry_due) == [job_id]

    assert claim(engine, settings, NOW) == [job_id]
    stale = Dispatcher(engine, settings, accounts, httpx.Client(), pacer=StallsAfterReading(while_stalled))
    # The stalled worker wakes: the job is queued, but not as it read it. Nothing leaves.
    assert stale.dispatch(job_id, NOW) == RACED
    assert route.call_count == 1

    # Attempt 2 is placed once, with its own number; then the budget is spent.
    assert prompt.dispatch(job_id, retry_due) == Dispatched(Step.ACCEPTED)
    assert no_answer(engine, settings, "call-2", retry_due + timedelta(minutes=1)) is Applied.APPLIED
    assert route.call_count == 2
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        numbers = [a.number for a in job_store.attempts_of(conn, job_id)]
        history = [(e.from_state, e.to_state, e.attempt) for e in job_store.job_events_of(conn, job_id)]
    assert job is not None and job.state == JobState.EXHAUSTED and job.attempts_used == 2
    assert numbers == [1, 2]
    assert ("queued", "dialing", 1) in history and ("queued", "dialing", 2) in history
    assert sum(1 for e in history if e[:2] == ("queued", "dialing")) == 2


def test_begin_dial_takes_the_attempt_number_from_the_row_it_updates(engine: Engine, settings: Settings) -> None:
    job_id = make_job(engine, settings, retries=2)
    claim(engine, settings, NOW)
    with engine.begin() as conn:
        read = job_store.get_job(conn, job_id)
        assert read is not None
        start = job_store.begin_dial(conn, read, "callkaro", NOW)
        assert start is not None and start.number == 1
        # Transport trouble: the same attempt is sent again, not a new one.
        assert job_store.schedule_retry(conn, job_id, JobState.DIALING, NOW, "transport", transport_retries=1)
        assert job_store.claim(conn, [job_id], NOW) == [job_id]
        # The read from before the resend is stale (its transport_retries is 0): refused.
        assert job_store.begin_dial(conn, read, "callkaro", NOW) is None
        fresh = job_store.get_job(conn, job_id)
        resent = job_store.begin_dial(conn, fresh, "callkaro", NOW)
        assert resent is not None and resent.number == 1
        assert [a.number for a in job_store.attempts_of(conn, job_id)] == [1, 1]


@respx.mock
def test_an_unknown_job_that_gets_its_call_id_late_is_settled_by_its_outcome(
    engine: Engine, settings: Settings
) -> None:
    job_id = make_job(engine, settings, retries=1)
    lease_over = NOW + timedelta(seconds=settings.dialing_lease_s + 1)
    report = TickReport()

    def slow_provider(request: httpx.Request) -> httpx.Response:
        # The answer takes longer than the dialing lease: the scheduler gives up on the worker.
        Scheduler(engine, settings, lambda _id: None).reconcile(lease_over, report)
        return httpx.Response(200, json={"call_sid": "late-call"})

    respx.post(URL).mock(side_effect=slow_provider)
    assert claim(engine, settings, NOW) == [job_id]
    accounts = load_accounts(settings.accounts_file)
    assert Dispatcher(engine, settings, accounts, httpx.Client()).dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
    assert report.lost == 1
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        history = [(e.from_state, e.to_state) for e in job_store.job_events_of(conn, job_id)]
        awaiting = [j.id for j in job_store.awaiting_outcome(conn, lease_over, lease_over, 10)]
    # Still unknown (never redialled on its own), but it names its call: the poller can ask about it.
    assert job is not None and job.state == JobState.UNKNOWN and job.provider_call_id == "late-call"
    assert history[-2:] == [("dialing", "unknown"), ("unknown", "unknown")]
    assert awaiting == [job_id]
    assert claim(engine, settings, lease_over + timedelta(hours=1)) == []

    # The outcome webhook settles it, as for any call whose id the job holds.
    done = CallEvent("late-call", "late-call:call_ended", "CLIENT_INITIATED", Outcome.COMPLETED, lease_over)
    assert record_event(engine, "callkaro", "ck", done, "{}", "webhook", lease_over, settings) is Applied.APPLIED
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == JobState.COMPLETED and job.last_outcome == "completed"
