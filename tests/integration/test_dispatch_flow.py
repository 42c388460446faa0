"""A job's life on both databases: scheduler claim, worker dispatch (provider mocked with respx), outcome."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from outdial.scheduler.loop import Scheduler
from outdial.services.dispatch import Dispatched, Dispatcher, Step
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.outcomes import record_event
from outdial.services.providers.accounts import load_accounts
from outdial.services.providers.base import CallEvent, Outcome
from outdial.settings import Settings
from outdial.store import jobs as job_store

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
URL = "http://callkaro.test/call/outbound"


def make_job(engine: Engine, settings: Settings, **fields: object) -> int:
    body = CallBody.model_validate(
        {"to_number": "+12125551234", "account": "ck", "timezone": "America/New_York", **fields}
    )
    return enqueue_call(engine, body, NOW, settings).job_id


def claim(engine: Engine, settings: Settings, now: datetime = NOW) -> list[int]:
    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(now)
    return sent


def dispatcher(engine: Engine, settings: Settings) -> Dispatcher:
    return Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client())


def state(engine: Engine, job_id: int) -> str:
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None
    return str(job.state)


@respx.mock
def test_accepted_then_no_answer_schedules_retry_then_completes(engine: Engine, settings: Settings) -> None:
    job_id = make_job(engine, settings, number_of_retries=1, gap_between_retries=30)
    route = respx.post(URL).mock(
        side_effect=[
            httpx.Response(200, json={"status": "success", "call_sid": "call-1"}),
            httpx.Response(200, json={"status": "success", "call_sid": "call-2"}),
        ]
    )
    assert claim(engine, settings) == [job_id]
    assert dispatcher(engine, settings).dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
    sent = json.loads(route.calls[0].request.content)
    assert sent == {"to_number": "+12125551234", "agent_id": "sim-agent", "metadata": {}}
    assert route.calls[0].request.headers["X-API-KEY"] == "sim-key"

    ended = NOW + timedelta(minutes=2)
    event = CallEvent("call-1", "call-1:call_ended", "USER_UNRESPONSIVE", Outcome.NO_ANSWER, ended)
    assert record_event(engine, "callkaro", "ck", event, "{}", "webhook", ended, settings) == "applied"
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == "scheduled"
    assert job.next_due_at == ended + timedelta(minutes=30)  # gap is elapsed time after the attempt ended

    assert claim(engine, settings, ended) == []  # not due yet
    later = ended + timedelta(minutes=30)
    assert claim(engine, settings, later) == [job_id]
    assert dispatcher(engine, settings).dispatch(job_id, later) == Dispatched(Step.ACCEPTED)
    done = CallEvent("call-2", "call-2:call_ended", "CLIENT_INITIATED", Outcome.COMPLETED, later)
    assert record_event(engine, "callkaro", "ck", done, "{}", "webhook", later, settings) == "applied"
    assert state(engine, job_id) == "completed"
    # The same webhook again changes nothing.
    assert record_event(engine, "callkaro", "ck", done, "{}", "webhook", later, settings) == "duplicate"
    assert route.call_count == 2


@respx.mock
def test_duplicate_delivery_dials_once(engine: Engine, settings: Settings) -> None:
    job_id = make_job(engine, settings)
    route = respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "c"}))
    claim(engine, settings)
    d = dispatcher(engine, settings)
    assert d.dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
    assert d.dispatch(job_id, NOW) == Dispatched(Step.SKIPPED, "accepted")
    assert route.call_count == 1


def test_two_schedulers_never_enqueue_twice(engine: Engine, settings: Settings) -> None:
    ids = {make_job(engine, settings) for _ in range(20)}
    first, second = claim(engine, settings), claim(engine, settings)
    assert set(first) == ids and second == []


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(400, json={"status": "error", "message": "Missing agent_id"}), "rejected"),
        (httpx.Response(404, json={"status": "error", "message": "Agent does not exist"}), "rejected"),
        (httpx.Response(500, json={"status": "error", "message": "Server error"}), "unknown"),
        (httpx.Response(429, headers={"Retry-After": "0"}), "scheduled"),
        (httpx.Response(503), "unknown"),  # no document says a 503 placed no call: never re-sent
        (httpx.ConnectError("refused"), "scheduled"),
        (httpx.ReadTimeout("slow"), "unknown"),
        (httpx.RemoteProtocolError("dropped"), "unknown"),
    ],
)
@respx.mock
def test_failures_are_classified(
    engine: Engine, settings: Settings, response: httpx.Response | Exception, expected: str
) -> None:
    job_id = make_job(engine, settings, number_of_retries=3)
    respx.post(URL).mock(side_effect=[response])
    claim(engine, settings)
    dispatcher(engine, settings).dispatch(job_id, NOW)
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        attempts = job_store.attempts_of(conn, job_id)
    assert job is not None and job.state == expected
    assert len(attempts) == 1
    if expected == "scheduled":  # transport trouble: the retry budget is untouched
        assert job.transport_retries == 1 and job.attempts_used == 1
    if expected == "rejected":
        assert job.reason and "agent" in job.reason.lower()


@respx.mock
def test_resend_after_transport_trouble_reuses_the_attempt_number(engine: Engine, settings: Settings) -> None:
    job_id = make_job(engine, settings, number_of_retries=1)
    respx.post(URL).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json={"call_sid": "x"})])
    claim(engine, settings)
    dispatcher(engine, settings).dispatch(job_id, NOW)
    later = NOW + timedelta(seconds=5)
    assert claim(engine, settings, later) == [job_id]
    assert dispatcher(engine, settings).dispatch(job_id, later) == Dispatched(Step.ACCEPTED)
    with engine.connect() as conn:
        numbers = [a.number for a in job_store.attempts_of(conn, job_id)]
    assert numbers == [1, 1]


@respx.mock
def test_webhook_before_the_call_id_is_recorded_is_applied_later(engine: Engine, settings: Settings) -> None:
    job_id = make_job(engine, settings)
    claim(engine, settings)
    early = CallEvent("early", "early:call_ended", "CLIENT_INITIATED", Outcome.COMPLETED, NOW)
    assert record_event(engine, "callkaro", "ck", early, "{}", "webhook", NOW, settings) == "unmatched"
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "early"}))
    dispatcher(engine, settings).dispatch(job_id, NOW)
    assert state(engine, job_id) == "completed"


def test_job_past_its_window_at_claim_carries_over_or_expires(engine: Engine, settings: Settings) -> None:
    window = {"min_trigger_time": "09:00", "max_trigger_time": "11:00"}
    carry = make_job(engine, settings, carry_over=True, **window)
    expire = make_job(engine, settings, **window)
    late = NOW + timedelta(hours=3)  # 13:00 in New York: the window closed at 11:00
    assert claim(engine, settings, late) == []
    with engine.connect() as conn:
        carried = job_store.get_job(conn, carry)
    assert carried is not None and carried.state == "scheduled"
    assert carried.next_due_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # 09:00 EST next day
    assert state(engine, expire) == "expired"


def test_worker_lost_before_dialing_loses_no_job(engine: Engine, settings: Settings) -> None:
    """Claimed and queued, then the message is lost: the queued lease sends it again."""
    job_id = make_job(engine, settings)
    assert claim(engine, settings) == [job_id]
    later = NOW + timedelta(seconds=settings.queued_lease_s + 1)
    sent: list[int] = []
    Scheduler(engine, settings, sent.append).tick(later)
    assert sent == [job_id]
    assert state(engine, job_id) == "queued"


def test_worker_lost_mid_request_goes_to_unknown_not_redialled(engine: Engine, settings: Settings) -> None:
    job_id = make_job(engine, settings)
    claim(engine, settings)
    with engine.begin() as conn:
        job = job_store.get_job(conn, job_id)
        assert job is not None
        assert job_store.begin_dial(conn, job, "callkaro", NOW) is not None  # then the worker dies
    later = NOW + timedelta(seconds=settings.dialing_lease_s + 1)
    sent: list[int] = []
    counted = lease_unknowns("dialing")
    Scheduler(engine, settings, sent.append).tick(later)
    assert sent == [] and state(engine, job_id) == "unknown"
    # Counted for OutdialUnknownRateHigh, once: the next tick finds nothing more to move.
    assert lease_unknowns("dialing") == counted + 1
    Scheduler(engine, settings, sent.append).tick(later + timedelta(seconds=1))
    assert lease_unknowns("dialing") == counted + 1


def lease_unknowns(stage: str) -> float:
    return REGISTRY.get_sample_value("outdial_lease_unknowns_total", {"stage": stage}) or 0.0


def test_do_not_call_at_dial_time(engine: Engine, settings: Settings) -> None:
    from outdial.store import dnc

    job_id = make_job(engine, settings)
    claim(engine, settings)
    with engine.begin() as conn:
        dnc.add(conn, ["+12125551234"], "test", NOW)
    assert dispatcher(engine, settings).dispatch(job_id, NOW) == Dispatched(Step.SUPPRESSED)
    assert state(engine, job_id) == "suppressed"


def test_missing_credential_rejects_without_dialling(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTDIAL_TEST_CK_KEY")
    job_id = make_job(engine, settings)
    claim(engine, settings)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(URL)
        assert dispatcher(engine, settings).dispatch(job_id, NOW) == Dispatched(Step.REJECTED)
        assert route.call_count == 0
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and "OUTDIAL_TEST_CK_KEY" in (job.reason or "")


@respx.mock
def test_webhook_that_lost_the_race_with_the_worker_is_applied_by_the_scheduler(
    engine: Engine, settings: Settings
) -> None:
    """The API stored the event as unmatched just after the worker had looked for waiting events."""
    from outdial.store import events as event_store

    job_id = make_job(engine, settings)
    claim(engine, settings)
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "raced"}))
    assert dispatcher(engine, settings).dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
    with engine.begin() as conn:  # what the API's transaction committed after the worker's replay
        event_id = event_store.store_event(
            conn,
            {
                "provider": "callkaro",
                "account": "ck",
                "event_key": "raced:call_ended",
                "provider_call_id": "raced",
                "kind": "webhook",
                "payload": "{}",
                "raw_status": "CLIENT_INITIATED",
                "outcome": "completed",
                "ended_at": NOW,
                "received_at": NOW,
            },
        )
        assert event_id is not None
        event_store.mark_event(conn, event_id, "unmatched")
    assert state(engine, job_id) == "accepted"
    report = Scheduler(engine, settings, lambda _: None).tick(NOW + timedelta(seconds=1))
    assert report.late_matches == 1
    assert state(engine, job_id) == "completed"


@respx.mock
def test_the_workers_answer_does_not_wait_for_the_calls_lock(engine: Engine, settings: Settings) -> None:
    """A webhook applying an event holds the call's lock; the worker's answer takes no such lock, so it
    commits at once (the event, if it missed the call id, is the sweep's; see the test above)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers itself")
    from outdial.store import events as event_store

    job_id = make_job(engine, settings)
    claim(engine, settings)
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "held"}))
    with ThreadPoolExecutor(1) as pool:
        with engine.connect() as webhook, webhook.begin():
            event_store.lock_call(webhook, "callkaro", "held")
            answer = pool.submit(dispatcher(engine, settings).dispatch, job_id, NOW)
            finished_while_held = bool(wait([answer], timeout=10).done)
        assert finished_while_held  # (the lock is released above, so a failing run still ends)
        assert answer.result() == Dispatched(Step.ACCEPTED)
    assert state(engine, job_id) == "accepted"


@respx.mock
def test_an_event_the_worker_applied_is_not_applied_again_by_the_sweep(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep listed an event as matchable, then the worker's replay applied it: the sweep skips
    it rather than apply it again or relabel it a duplicate."""
    from outdial.services import outcomes
    from outdial.store import events as event_store

    job_id = make_job(engine, settings)
    claim(engine, settings)
    early = CallEvent("swept", "swept:call_ended", "CLIENT_INITIATED", Outcome.COMPLETED, NOW)
    assert record_event(engine, "callkaro", "ck", early, "{}", "webhook", NOW, settings) == "unmatched"
    with engine.connect() as conn:
        (listed,) = event_store.unmatched_events(conn, "callkaro", "ck", "swept")
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "swept"}))
    assert dispatcher(engine, settings).dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
    assert state(engine, job_id) == "completed"  # replayed by the worker once its answer committed

    monkeypatch.setattr(event_store, "matchable_unmatched", lambda conn, limit: [listed])  # read before that
    assert outcomes.apply_late_matches(engine, NOW + timedelta(seconds=1), settings) == 0
    with engine.connect() as conn:
        (stored,) = event_store.reported(conn, ["swept"])["swept"]
    assert stored.applied == "applied"
