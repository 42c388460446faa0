"""Pacing on the dispatch path, with the real Redis: concurrency slots from dial to outcome,
429 back-pressure, the scheduler's per-account and per-campaign budgets, and slots re-seeded
after Redis forgets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
import respx
from sqlalchemy import Engine, event

from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.dispatch import Dispatched, Dispatcher, Step
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.outcomes import record_event
from outdial.services.pacing.pacer import Gate, Pacer, SendTicket
from outdial.services.providers.accounts import Account, load_accounts
from outdial.services.providers.base import CallEvent, Outcome
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from tests.conftest import delete_redis_keys, redis_keys_of

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
URL = "http://callkaro.test/call/outbound"


@pytest.fixture
def paced(settings: Settings, redis_url: str) -> Iterator[Settings]:
    """The test account limited to one call at a time, with its own Redis keys (deleted afterwards)."""
    text = settings.accounts_file.read_text() + "limits = { max_concurrent = 1 }\n"
    settings.accounts_file.write_text(text)
    # No grace: the test runs each step to its end before the next, in fake time.
    yield settings.model_copy(update={"slot_grace_s": 0})
    delete_redis_keys(redis_url, redis_keys_of(settings))


def parts(engine: Engine, settings: Settings, redis_url: str) -> tuple[Scheduler, Dispatcher, list[int]]:
    """A scheduler and a dispatcher sharing a pacer; the scheduler's sends are collected in the list."""
    sent: list[int] = []
    pacer = Pacer(redis.Redis.from_url(redis_url), settings)
    accounts = load_accounts(settings.accounts_file)
    scheduler = Scheduler(engine, settings, sent.append, accounts=accounts, pacer=pacer)
    dispatcher = Dispatcher(engine, settings, accounts, httpx.Client(), pacer=pacer)
    return scheduler, dispatcher, sent


def calls(engine: Engine, settings: Settings, n: int) -> list[int]:
    bodies = [CallBody(to_number=f"+1212555{5000 + i:04d}", account="ck", callee_hours=None) for i in range(n)]
    return [enqueue_call(engine, body, NOW, settings).job_id for body in bodies]


def state(engine: Engine, job_id: int) -> str:
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None
    return str(job.state)


@respx.mock
def test_one_call_at_a_time_from_dial_to_outcome(engine: Engine, paced: Settings, redis_url: str) -> None:
    first, second = calls(engine, paced, 2)
    scheduler, dispatcher, sent = parts(engine, paced, redis_url)
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "c1"}))
    scheduler.tick(NOW)  # seeds the slots (nothing in progress) and queues within the budget
    assert sent == [first]  # the budget lets one through; the other stays scheduled
    assert dispatcher.dispatch(first, NOW) == Dispatched(Step.ACCEPTED)

    # A second dispatch for the account, while the first call is live, is handed back.
    with engine.begin() as conn:
        assert job_store.claim(conn, [second], NOW) == [second]
    assert dispatcher.dispatch(second, NOW) == Dispatched(Step.PACED, "concurrency")
    assert state(engine, second) == "scheduled"

    ended = NOW + timedelta(seconds=20)
    event = CallEvent("c1", "c1:end", "CLIENT_INITIATED", Outcome.COMPLETED, ended)
    assert record_event(engine, "callkaro", "ck", event, "{}", "webhook", ended, paced) == "applied"
    sent.clear()
    scheduler.tick(ended)  # frees the slot of the ended call, then queues the waiting job
    assert sent == [second]
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "c2"}))
    assert dispatcher.dispatch(second, ended) == Dispatched(Step.ACCEPTED)


@respx.mock
def test_a_429_slows_the_whole_account(engine: Engine, paced: Settings, redis_url: str) -> None:
    first, second = calls(engine, paced, 2)
    scheduler, dispatcher, _ = parts(engine, paced, redis_url)
    scheduler.tick(NOW)
    respx.post(URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
    assert dispatcher.dispatch(first, NOW) == Dispatched(Step.RETRY_SAFE)
    text = paced.accounts_file.read_text().replace("max_concurrent = 1", "calls_per_second = 5")
    paced.accounts_file.write_text(text)
    _, dispatcher, _ = parts(engine, paced, redis_url)
    with engine.begin() as conn:
        job_store.claim(conn, [second], NOW)
    assert dispatcher.dispatch(second, NOW) == Dispatched(Step.PACED, "rate")  # the provider asked for 30 s of quiet
    with engine.connect() as conn:
        job = job_store.get_job(conn, second)
    assert job is not None and job.next_due_at is not None
    assert job.next_due_at >= NOW + timedelta(seconds=25)
    assert job.attempts_used == 0  # waiting for a turn uses no attempt


def test_slots_are_reseeded_after_redis_forgets(engine: Engine, paced: Settings, redis_url: str) -> None:
    (job_id,) = calls(engine, paced, 1)
    scheduler, dispatcher, _ = parts(engine, paced, redis_url)
    scheduler.tick(NOW)
    with respx.mock:
        respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "live"}))
        assert dispatcher.dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{paced.pacing_prefix}:*"):
        client.delete(key)  # as after a Redis restart
    assert dispatcher.pacer is not None
    assert dispatcher.pacer.slots.needs_seed()
    scheduler.sync_slots(NOW)
    # The live call holds its slot again, so the account stays at one call.
    assert dispatcher.pacer.slots.held("ck") == 1


class SlowPacer(Pacer):
    """A pacer whose turn comes ``wait_s`` later, as under load; it records how long a send may wait."""

    wait_s = 0.6
    send_waits: list[float] = []

    def admit(self, *args: Any, **kwargs: Any) -> Gate:
        time.sleep(self.wait_s)
        return super().admit(*args, **kwargs)

    def clear_to_send(
        self, account: Account, send_id: str, max_wait_s: float = 5.0, taken: SendTicket | None = None
    ) -> SendTicket | None:
        self.send_waits.append(max_wait_s)
        return super().clear_to_send(account, send_id, max_wait_s, taken)


def windowed_call(engine: Engine, settings: Settings, pacer: Pacer) -> int:
    """A job whose window (UTC, no carry-over) closes one minute after NOW, queued by the scheduler."""
    body = CallBody(
        to_number="+12125556000",
        account="ck",
        callee_hours=None,
        timezone="UTC",
        min_trigger_time="14:00",
        max_trigger_time="15:01",
    )
    job_id = enqueue_call(engine, body, NOW, settings).job_id
    sent: list[int] = []
    Scheduler(engine, settings, sent.append, accounts=load_accounts(settings.accounts_file), pacer=pacer).tick(NOW)
    assert sent == [job_id]
    return job_id


@respx.mock
def test_a_window_that_closes_during_the_pacing_wait_is_not_dialled(
    engine: Engine, paced: Settings, redis_url: str
) -> None:
    """Rule 7 holds at the instant the request would leave, not only when the dispatch began."""
    pacer = SlowPacer(redis.Redis.from_url(redis_url), paced)
    job_id = windowed_call(engine, paced, pacer)
    route = respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "late"}))
    dispatcher = Dispatcher(engine, paced, load_accounts(paced.accounts_file), httpx.Client(), pacer=pacer)
    # Open when the dispatch starts; closed 0.6 s later, when its pacing turn comes.
    assert dispatcher.dispatch(job_id, NOW + timedelta(seconds=59.7)) == Dispatched(Step.EXPIRED)
    assert not route.called
    assert state(engine, job_id) == "expired"


@respx.mock
def test_send_room_taken_at_admission_goes_back_when_the_call_does_not_leave(
    engine: Engine, paced: Settings, redis_url: str
) -> None:
    """The admission takes the send window's room with the turn; a call that then finds its window
    closed gives it back (and its slot), so the account's next second is not spent on nothing."""
    text = paced.accounts_file.read_text().replace("max_concurrent = 1", "max_concurrent = 1, calls_per_second = 5")
    paced.accounts_file.write_text(text)
    client = redis.Redis.from_url(redis_url)
    pacer = SlowPacer(client, paced)
    job_id = windowed_call(engine, paced, pacer)
    route = respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "late"}))
    dispatcher = Dispatcher(engine, paced, load_accounts(paced.accounts_file), httpx.Client(), pacer=pacer)
    assert dispatcher.dispatch(job_id, NOW + timedelta(seconds=59.7)) == Dispatched(Step.EXPIRED)
    assert not route.called
    assert client.zcard(f"{paced.pacing_prefix}:sent:account:ck") == 0
    assert pacer.slots.held("ck") == 0


@respx.mock
def test_the_wait_for_room_to_send_ends_with_the_window(engine: Engine, paced: Settings, redis_url: str) -> None:
    text = paced.accounts_file.read_text().replace("max_concurrent = 1", "max_concurrent = 1, calls_per_second = 5")
    paced.accounts_file.write_text(text)
    pacer = SlowPacer(redis.Redis.from_url(redis_url), paced)
    pacer.wait_s, pacer.send_waits = 0.0, []
    job_id = windowed_call(engine, paced, pacer)
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "in-time"}))
    dispatcher = Dispatcher(engine, paced, load_accounts(paced.accounts_file), httpx.Client(), pacer=pacer)
    assert dispatcher.dispatch(job_id, NOW + timedelta(seconds=59)) == Dispatched(Step.ACCEPTED)
    (waited,) = pacer.send_waits
    assert 0 < waited <= 1.0  # the second left of the window, not the usual 5 s
    with engine.connect() as conn:
        attempt = job_store.open_attempt(conn, job_id)
    assert attempt is not None and NOW + timedelta(seconds=59) <= attempt.requested_at < NOW + timedelta(minutes=1)


@respx.mock
def test_the_scheduler_sends_a_campaigns_jobs_at_its_rate_so_none_is_handed_back(
    engine: Engine, settings: Settings, redis_url: str
) -> None:
    """A campaign of 60 calls a minute with 30 due jobs: the scheduler sends about one a second,
    each within the gate's wait, so the worker hands none back (it used to send all 30 at once)."""
    paced = settings.model_copy(update={"pacing_prefix": f"outdial:test:{uuid.uuid4().hex}"})
    start = datetime.now(UTC)
    campaign_id = create_campaign(
        engine, paced, "steady", "ck", TimingFields(callee_hours=None), start, calls_per_minute=60
    )
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    add_leads(engine, paced, campaign, [LeadIn(f"+1212555{6000 + i:04d}") for i in range(30)], start)
    scheduler, dispatcher, sent = parts(engine, paced, redis_url)
    respx.post(URL).mock(return_value=httpx.Response(200, json={"call_sid": "c"}))

    scheduler.tick(datetime.now(UTC))
    assert 1 <= len(sent) <= 2  # the first turn, and one more within the gate's wait
    results = []
    while len(results) < 5:
        for job_id in sent:
            results.append(dispatcher.dispatch(job_id, datetime.now(UTC)))
        sent.clear()
        time.sleep(paced.scheduler_interval_s)
        scheduler.tick(datetime.now(UTC))
    assert not [r for r in results if r.step == Step.PACED], results
    assert set(results) == {Dispatched(Step.ACCEPTED)}
    elapsed = (datetime.now(UTC) - start).total_seconds()
    assert len(results) <= elapsed * 60 / 60 + 2  # about one a second, never a burst


@respx.mock
def test_a_call_no_limit_holds_back_begins_in_the_transaction_that_read_it(
    engine: Engine, settings: Settings, redis_url: str
) -> None:
    """Limits configured but not binding: on PostgreSQL the pacer is asked inside the first transaction
    and ``queued -> dialing`` commits there (two transactions per call, as without limits); a reserved
    turn ahead is waited out with no transaction open. SQLite's transactions hold its one write lock,
    so Redis is asked between them there."""
    text = settings.accounts_file.read_text() + "limits = { calls_per_second = 2, max_concurrent = 5 }\n"
    settings.accounts_file.write_text(text)
    try:
        first, second = calls(engine, settings, 2)
        with engine.begin() as conn:
            assert job_store.claim(conn, [first, second], NOW) == [first, second]
        scheduler, dispatcher, _ = parts(engine, settings, redis_url)
        scheduler.tick(NOW)  # seeds the slots and send windows
        respx.post(URL).mock(side_effect=[httpx.Response(200, json={"call_sid": f"c{n}"}) for n in (1, 2)])
        transactions: list[bool] = []
        open_now: list[bool] = []

        def began(_conn: Any) -> None:
            transactions.append(True)
            open_now.append(True)

        def ended(_conn: Any) -> None:
            open_now.clear()

        event.listen(engine, "begin", began)
        event.listen(engine, "commit", ended)
        event.listen(engine, "rollback", ended)
        sleeps: list[bool] = []
        real_sleep = time.sleep

        def sleep(seconds: float) -> None:
            sleeps.append(bool(open_now))  # was a transaction open while this call waited?
            real_sleep(seconds)

        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("outdial.services.dispatch.time.sleep", sleep)
                patch.setattr("outdial.services.pacing.pacer.time.sleep", sleep)
                assert dispatcher.dispatch(first) == Dispatched(Step.ACCEPTED)
                once = len(transactions)
                started = time.monotonic()
                assert dispatcher.dispatch(second) == Dispatched(Step.ACCEPTED)  # the next turn, 0.5 s on
                waited = time.monotonic() - started
        finally:
            for name, fn in (("begin", began), ("commit", ended), ("rollback", ended)):
                event.remove(engine, name, fn)
        assert once == (2 if engine.dialect.name == "postgresql" else 3)
        assert waited > 0.3 and sleeps and not any(sleeps)
        with engine.connect() as conn:
            (a1,) = job_store.attempts_of(conn, first)
            (a2,) = job_store.attempts_of(conn, second)
        assert (a2.requested_at - a1.requested_at).total_seconds() > 0.3
    finally:
        delete_redis_keys(redis_url, redis_keys_of(settings))
