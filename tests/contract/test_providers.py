"""The provider contract: one suite, fed by every registered provider's fixtures (``fixtures/<name>.py``).

(a) the adapter's requests and readings, against the documents' own examples;
(b) the simulator, which must refuse what the documents refuse; (c) end to end:
dispatcher -> simulator -> webhook -> API -> job. A check only one provider
needs lives in its fixture module and runs here too (``test_provider_check``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from outdial.api.app import create_app as create_api
from outdial.api.auth import create_key
from outdial.models import Attempt, JobState, ProviderEvent
from outdial.scheduler.loop import Scheduler
from outdial.scheduler.poller import StatusPoller
from outdial.services import export
from outdial.services.campaigns import create_campaign
from outdial.services.dispatch import Dispatched, Dispatcher, Step
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.jobs import RESULT_FIELDS
from outdial.services.providers import adapter_for, adapters
from outdial.services.providers.accounts import Account, load_accounts
from outdial.services.providers.base import CallEvent, Outcome, Verdict, WebhookRefused
from outdial.services.providers.transport import Timeouts, send
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.simulator.app import create_app as create_sim
from outdial.simulator.app import simulators
from outdial.simulator.base import SimConfig
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from tests.contract.fixtures import Answer, Contract, Kit, Reading, SimRefusal, all_contracts

CONTRACTS = all_contracts()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every contract, and every case each one feeds, as its own test id."""
    cases: dict[str, Any] = {
        "answer": lambda c: c.answers,
        "webhook": lambda c: c.webhooks,
        "status": lambda c: c.statuses,
        "refusal": lambda c: c.sim_refusals,
        "check": lambda c: c.checks,
        "db_check": lambda c: c.db_checks,
        "unreadable": lambda c: c.unreadable_webhooks,
    }
    wanted = [name for name in cases if name in metafunc.fixturenames]
    if not wanted:
        if "contract" in metafunc.fixturenames:
            metafunc.parametrize("contract", CONTRACTS, ids=[c.name for c in CONTRACTS])
        return
    [name] = wanted
    params, ids = [], []
    for contract in CONTRACTS:
        for index, case in enumerate(cases[name](contract)):
            params.append((contract, case))
            ids.append(f"{contract.name}-{getattr(case, '__name__', None) or getattr(case, 'why', None) or index}")
    metafunc.parametrize(("contract", name), params, ids=ids)


@pytest.fixture
def account(contract: Contract, monkeypatch: pytest.MonkeyPatch) -> Account:
    for key, value in contract.env.items():
        monkeypatch.setenv(key, value)
    return contract.account


@pytest.fixture
def sim_account(contract: Contract, monkeypatch: pytest.MonkeyPatch) -> Account:
    for key, value in contract.sim_env.items():
        monkeypatch.setenv(key, value)
    return contract.sim_account


@pytest.fixture
def hooks(contract: Contract) -> Iterator[respx.Router]:
    """Where the simulator's webhooks go: recorded, answered 200."""
    with respx.mock(assert_all_called=False) as mock:
        mock.post(contract.hook_url).mock(return_value=httpx.Response(200))
        yield mock


def fresh(contract: Contract) -> None:
    contract.sim.reset()
    contract.sim.active = 0  # calls of an earlier test whose event loop is gone never end
    contract.sim.config = SimConfig()
    getattr(contract.sim_module, "get_window", []).clear()


@pytest.fixture
def sim(contract: Contract, hooks: respx.Router) -> Iterator[TestClient]:
    fresh(contract)
    contract.sim.configure({"webhook_url": contract.hook_url, "outcome_delay_s": 0.2, "seed": 1})
    with TestClient(create_sim()) as client:
        yield client
    fresh(contract)


@pytest.fixture
def kit(request: pytest.FixtureRequest, contract: Contract) -> Kit:
    return Kit(request, contract)


def sim_request(client: TestClient, spec: tuple[str, str, dict[str, Any]]) -> httpx.Response:
    method, path, kwargs = spec
    return client.request(method, path, **kwargs)


def place(contract: Contract, client: TestClient, account: Account) -> str:
    request = contract.adapter.build_request(account, contract.call)
    response = client.send(request)
    result = contract.adapter.parse_response(response)
    assert result.verdict == Verdict.ACCEPTED and result.provider_call_id, response.text
    return result.provider_call_id


def look_up(contract: Contract, client: TestClient, account: Account, call_id: str) -> CallEvent | None:
    """What the poller does: the look-up, and the one it points to."""
    adapter = contract.adapter
    request = adapter.build_status_request(account, call_id)
    assert request is not None
    response = client.send(request)
    follow = adapter.status_follow_up(account, call_id, response)
    return adapter.parse_status(call_id, client.send(follow) if follow is not None else response, account)


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def events_stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ProviderEvent)).scalar_one())


# The registry ------------------------------------------------------------------------


def test_every_adapter_has_a_simulator_and_fixtures() -> None:
    assert sorted(adapters()) == sorted(simulators()) == sorted(c.name for c in CONTRACTS)
    for contract in CONTRACTS:
        assert type(adapter_for(contract.name)) is type(contract.adapter)


# (a) Requests as built and answers as read ------------------------------------------


def test_the_request_is_the_documented_one(contract: Contract, account: Account) -> None:
    contract.check_request(contract.adapter.build_request(account, contract.call))


@respx.mock
def test_answers_are_classified(contract: Contract, answer: Answer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in contract.env.items():
        monkeypatch.setenv(key, value)
    respx.post(contract.create_url).mock(return_value=answer.response)
    request = contract.adapter.build_request(contract.account, contract.call)
    result = send(httpx.Client(), contract.adapter, request, Timeouts()).result
    assert (result.verdict, result.error_code, result.provider_call_id) == (answer.verdict, answer.code, answer.call_id)
    assert result.http_status == (answer.http_status or answer.response.status_code)
    if answer.message_part:
        assert result.message is not None and answer.message_part in result.message
    if answer.retry_after_s is not None:
        assert result.retry_after_s == answer.retry_after_s


@pytest.mark.parametrize("http_status", [500, 502, 503, 504])
def test_no_5xx_is_ever_resent(contract: Contract, http_status: int) -> None:
    """No document says a 5xx (503 included) means the call was not placed."""
    result = contract.adapter.parse_response(httpx.Response(http_status, text="Service Unavailable"))
    assert result.verdict in (Verdict.UNKNOWN, Verdict.REJECTED)
    assert result.verdict != Verdict.RETRY_SAFE


def test_a_429_with_retry_after_may_be_resent(contract: Contract) -> None:
    result = contract.adapter.parse_response(httpx.Response(429, headers={"Retry-After": "7"}, json={}))
    assert (result.verdict, result.retry_after_s) == (Verdict.RETRY_SAFE, 7.0)


@pytest.mark.parametrize(
    ("failure", "verdict"),
    [
        (httpx.ConnectError("refused"), Verdict.RETRY_SAFE),
        (httpx.ReadTimeout("slow"), Verdict.UNKNOWN),
        (httpx.RemoteProtocolError("dropped"), Verdict.UNKNOWN),
    ],
)
@respx.mock
def test_transport_failures(contract: Contract, account: Account, failure: Exception, verdict: Verdict) -> None:
    respx.post(contract.create_url).mock(side_effect=failure)
    request = contract.adapter.build_request(account, contract.call)
    assert send(httpx.Client(), contract.adapter, request, Timeouts()).result.verdict == verdict


def test_every_table_row_has_an_expectation(contract: Contract) -> None:
    for table, expected in contract.tables:
        assert dict(table) == dict(expected)


def test_per_call_options_are_checked_by_the_adapter(contract: Contract) -> None:
    adapter = contract.adapter
    assert adapter.call_options({"agent_id": "a-1"}) == {"agent_id": "a-1"}
    with pytest.raises(ValueError, match="no_such_option") as refused:
        adapter.call_options({"no_such_option": 1})
    assert getattr(refused.value, "field", None) == "no_such_option"


# (a) Outcomes: documented webhooks and look-ups -------------------------------------


def test_a_documented_webhook_reads_as_expected(contract: Contract, webhook: Reading, account: Account) -> None:
    assert isinstance(webhook.body, bytes)
    [event] = contract.adapter.parse_webhook(webhook.body, account)
    assert (event.provider_call_id, event.outcome) == (webhook.call_id, webhook.outcome)
    if webhook.raw_status is not None:
        assert event.raw_status == webhook.raw_status
    [again] = contract.adapter.parse_webhook(webhook.body, account)
    assert again.event_key == event.event_key  # a redelivery deduplicates


def test_a_documented_status_reads_as_expected(contract: Contract, status: Reading, account: Account) -> None:
    assert isinstance(status.body, httpx.Response)
    event = contract.adapter.parse_status(status.call_id, status.body, account)
    if status.raw_status is None and status.outcome is None:
        assert event is None or event.outcome is None
        return
    assert event is not None and (event.provider_call_id, event.outcome) == (status.call_id, status.outcome)
    if status.raw_status is not None:
        assert event.raw_status == status.raw_status


def test_unreadable_webhooks(contract: Contract, unreadable: bytes) -> None:
    with pytest.raises(ValueError):
        contract.adapter.parse_webhook(unreadable)


def test_webhook_authentication(contract: Contract, account: Account) -> None:
    body = contract.webhooks[0].body
    assert isinstance(body, bytes)
    now = time.time()
    contract.adapter.verify_webhook(account, contract.webhook_headers(body, now), body, now)
    for headers in contract.forged_headers(body, now):
        with pytest.raises(WebhookRefused):
            contract.adapter.verify_webhook(account, headers, body, now)


def test_the_api_refuses_forged_webhooks_and_stores_nothing(
    contract: Contract, account: Account, engine: Engine, settings: Settings
) -> None:
    client = TestClient(create_api(settings, engine, {account.name: account}))
    body = contract.webhooks[-1].body
    assert isinstance(body, bytes)
    url = f"/webhooks/{account.name}"
    for headers in contract.forged_headers(body, time.time()):
        assert client.post(url, content=body, headers=headers).status_code == 401
    assert events_stored(engine) == 0
    good = contract.webhook_headers(body, time.time())
    first = client.post(url, content=body, headers=good)
    assert first.status_code == 200 and first.json()["received"] == 1
    assert client.post(url, content=body, headers=contract.webhook_headers(body, time.time())).json()["results"] == [
        "duplicate"
    ]
    assert events_stored(engine) == 1


@respx.mock
def test_a_503_leaves_the_job_unknown_and_is_never_resent(
    contract: Contract, account: Account, engine: Engine, settings: Settings
) -> None:
    route = respx.post(contract.create_url).mock(return_value=httpx.Response(503, text="Service Unavailable"))
    body = CallBody(to_number=contract.e2e.to_number, account=account.name, timezone=contract.e2e.timezone)
    job_id = enqueue_call(engine, body, contract.e2e.now, settings).job_id
    Scheduler(engine, settings, lambda _: None).tick(contract.e2e.now)
    dispatcher = Dispatcher(engine, settings, {account.name: account}, httpx.Client())
    assert dispatcher.dispatch(job_id, contract.e2e.now) == Dispatched(Step.UNKNOWN)
    for later in range(1, 4):  # nothing brings it back to be dialled
        Scheduler(engine, settings, lambda _: None).tick(contract.e2e.now.replace(minute=later))
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == JobState.UNKNOWN
    assert route.call_count == 1


# (b) Against the simulator -----------------------------------------------------------


def test_the_simulator_accepts_the_adapters_request(contract: Contract, sim: TestClient, sim_account: Account) -> None:
    place(contract, sim, sim_account)
    stats = sim.get("/_sim/stats").json()["providers"][contract.name]
    assert stats["by_number"] == {contract.call.to_number: 1} and stats["accepted"] == 1


def test_the_simulator_authenticates_before_it_counts_limits(contract: Contract, sim: TestClient) -> None:
    contract.sim.configure({"rate_limit_per_minute": 1})
    for headers in contract.sim_bad_auth:
        method, path, kwargs = contract.sim_valid()
        response = sim.request(method, path, **{**kwargs, "headers": headers})
        assert response.status_code == contract.sim_auth_status, response.text
        assert contract.adapter.parse_response(response).verdict == Verdict.REJECTED
    assert contract.sim.stats()["accepted"] == 0
    assert sim_request(sim, contract.sim_valid()).status_code < 300  # the bad ones used no quota
    limited = sim_request(sim, contract.sim_valid())
    assert limited.status_code == 429
    result = contract.adapter.parse_response(limited)
    assert result.verdict == Verdict.RETRY_SAFE and result.retry_after_s is not None and result.retry_after_s > 0


def test_the_simulator_refuses_what_the_document_refuses(
    contract: Contract, refusal: SimRefusal, sim: TestClient
) -> None:
    response = sim_request(sim, refusal.request())
    assert response.status_code == refusal.status, response.text
    result = contract.adapter.parse_response(response)
    assert result.verdict == Verdict.REJECTED
    if refusal.code is not None:
        assert result.error_code == refusal.code
    if refusal.message_part is not None:
        assert refusal.message_part in (result.message or "")
    assert contract.sim.stats()["accepted"] == 0


def test_the_simulators_server_error_is_never_resent(contract: Contract, sim: TestClient, sim_account: Account) -> None:
    contract.sim.configure({"error_5xx_rate": 1.0})
    response = sim.send(contract.adapter.build_request(sim_account, contract.call))
    assert response.status_code == 500
    assert contract.adapter.parse_response(response).verdict == Verdict.UNKNOWN


def test_a_flag_turns_on_the_documented_limits(contract: Contract) -> None:
    fresh(contract)
    try:
        assert contract.sim.limits() == (None, None)
        contract.sim.configure({"documented_limits": True})
        documented = (contract.sim.documented_rate_per_minute, contract.sim.documented_max_concurrent)
        assert contract.sim.limits() == documented
        contract.sim.configure({"rate_limit_per_minute": 5})
        assert contract.sim.limits()[0] == 5  # an explicit limit wins
    finally:
        fresh(contract)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_the_look_up_follows_the_call(
    contract: Contract, sim: TestClient, sim_account: Account, outcome: Outcome
) -> None:
    if not contract.adapter.build_status_request(sim_account, "x"):
        pytest.skip("no status API")
    contract.sim.configure({"outcome_mix": {outcome: 1.0}})
    call_id = place(contract, sim, sim_account)
    during = look_up(contract, sim, sim_account, call_id)
    assert during is None or during.outcome is None
    wait_until(lambda: contract.sim.calls[call_id].ended is not None, "the simulated call never ended")
    after = look_up(contract, sim, sim_account, call_id)
    assert after is not None and after.outcome == contract.sim_outcomes[outcome]


@pytest.mark.parametrize("outcome", list(Outcome))
def test_the_simulators_webhooks_authenticate_and_read(
    contract: Contract, sim: TestClient, sim_account: Account, hooks: respx.Router, outcome: Outcome
) -> None:
    contract.sim.configure({"outcome_mix": {outcome: 1.0}})
    place(contract, sim, sim_account)
    wait_until(lambda: len(hooks.calls) >= contract.e2e.webhooks, "the webhooks never came")
    events = []
    for sent, _ in hooks.calls:
        assert str(sent.url) == contract.hook_url
        headers = {k.lower(): v for k, v in sent.headers.items()}
        contract.adapter.verify_webhook(sim_account, headers, sent.content, time.time())
        if contract.signs_webhooks:
            with pytest.raises(WebhookRefused):  # the same signature on a changed body
                changed = sent.content.replace(b"}", b', "x": 1}', 1)
                contract.adapter.verify_webhook(sim_account, headers, changed, time.time())
        payload = json.loads(sent.content)
        assert contract.webhook_fields(payload) <= contract.documented_webhook_fields, "an undocumented field"
        events.extend(contract.adapter.parse_webhook(sent.content, sim_account))
    assert [e.outcome for e in events if e.outcome] == [contract.sim_outcomes[outcome]]


# (c) End to end: dispatcher -> simulator -> webhook -> API -> job ----------------------


def test_a_job_placed_on_the_simulator_ends_by_its_webhook(
    contract: Contract, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only documented fields reach the API, and they match the job and apply once."""
    e2e = contract.e2e
    for key, value in e2e.env.items():
        monkeypatch.setenv(key, value)
    with settings.accounts_file.open("a") as accounts_file:
        accounts_file.write(e2e.account_toml)
    accounts = load_accounts(settings.accounts_file)
    [name] = [n for n, a in accounts.items() if a.provider == contract.name and n.endswith("-e2e")]
    hook_url = f"{settings.public_url}/webhooks/{name}"
    fresh(contract)
    contract.sim.configure(
        {
            "webhook_url": hook_url,
            "webhook_secret": "test-webhook-secret",
            "outcome_delay_s": 0.5 if contract.adapter.learns_call_ref else 0.1,
            "outcome_mix": {e2e.sim_outcome: 1},
        }
    )
    body = CallBody(to_number=e2e.to_number, account=name, timezone=e2e.timezone, number_of_retries=0)
    job_id = enqueue_call(engine, body, e2e.now, settings).job_id
    Scheduler(engine, settings, lambda _: None).tick(e2e.now)
    api = TestClient(create_api(settings, engine, accounts))
    try:
        with respx.mock(assert_all_called=False) as mock, TestClient(create_sim()) as sim_client:
            route = mock.post(url__startswith=settings.public_url).mock(return_value=httpx.Response(200))
            assert Dispatcher(engine, settings, accounts, sim_client).dispatch(job_id, e2e.now) == Dispatched(
                Step.ACCEPTED
            )
            if contract.adapter.learns_call_ref:
                # The webhook names only the call: the poller's prompt look-up teaches its id,
                # at once rather than after poll_after_s.
                assert StatusPoller(engine, settings, accounts, sim_client).poll(e2e.now) == 0
            wait_until(lambda: route.call_count >= e2e.webhooks, "the webhooks never came")
            sent = [(s.content, dict(s.headers)) for s, _ in route.calls]
            assert contract.sim.stats()["by_number"] == {e2e.to_number: 1}  # one request placed the call
    finally:
        fresh(contract)
    last_content, last_headers = sent[-1]
    forged, forged_headers = e2e.forge(last_content, last_headers)
    assert api.post(f"/webhooks/{name}", content=forged, headers=forged_headers).status_code == 401
    results = []
    for content, headers in sent * 2:  # every delivery twice: the second changes nothing
        answer = api.post(f"/webhooks/{name}", content=content, headers=headers)
        assert answer.status_code == 200, answer.text
        results.extend(answer.json()["results"])
    assert sorted(results) == sorted(e2e.expected_results)
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        [attempt] = conn.execute(select(Attempt.__table__).where(Attempt.__table__.c.job_id == job_id)).all()
    assert job is not None and (job.last_outcome, job.state) == (e2e.final_outcome, e2e.final_state)
    assert attempt.outcome == e2e.final_outcome and attempt.result_data  # what the provider reported is kept
    api.headers["Authorization"] = f"Bearer {create_key(engine, 'tests', e2e.now)}"
    [shown] = api.get(f"/jobs/{job_id}").json()["attempts"]
    assert shown["result_data"] == attempt.result_data
    assert "applied" in [r["applied"] for r in shown["reported"]]


@pytest.mark.parametrize("first", ["look-up", "webhook"])
def test_what_the_look_up_and_the_webhook_report_is_kept_together(
    contract: Contract, account: Account, engine: Engine, settings: Settings, first: str
) -> None:
    """Whichever of the two settles the call, what the other reports (duration, recording,
    transcript, summary, ...) is added to the attempt and its export row; the outcome stays."""
    both = contract.results
    if both is None:
        pytest.skip("no status API")
    e2e = contract.e2e
    campaign_id = create_campaign(engine, settings, "results", account.name, TimingFields(callee_hours=None), e2e.now)
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    body = CallBody(to_number=e2e.to_number, account=account.name, timezone=e2e.timezone, number_of_retries=0)
    job_id = enqueue_call(engine, body, e2e.now, settings, campaign=campaign).job_id
    Scheduler(engine, settings, lambda _: None).tick(e2e.now)
    accounts = {account.name: account}
    api = TestClient(create_api(settings, engine, accounts))
    answers: list[str] = []

    def post_webhook() -> None:
        headers = contract.webhook_headers(both.webhook, time.time())
        answer = api.post(f"/webhooks/{account.name}", content=both.webhook, headers=headers)
        assert answer.status_code == 200, answer.text
        answers.extend(answer.json()["results"])

    def answering(response: httpx.Response, racing: bool) -> Any:
        def answer(_: httpx.Request) -> httpx.Response:
            if racing:
                post_webhook()  # the webhook lands while the look-up is on its way
            return response

        return answer

    with respx.mock() as mock:
        mock.post(contract.create_url).mock(return_value=both.accepted)
        dispatcher = Dispatcher(engine, settings, accounts, httpx.Client())
        assert dispatcher.dispatch(job_id, e2e.now) == Dispatched(Step.ACCEPTED)
        for index, (url, response) in enumerate(both.look_ups):
            mock.get(url__startswith=url).mock(side_effect=answering(response, first == "webhook" and index == 0))
        later = e2e.now + timedelta(seconds=settings.poll_after_s + 1)
        StatusPoller(engine, settings, accounts, httpx.Client()).poll(later)
    if first == "look-up":
        post_webhook()
    # The webhook moves the job only when it comes first (NLPearl's waits for the look-up to name its call).
    [webhook_result] = answers
    assert webhook_result in (("duplicate_outcome", "duplicate") if first == "look-up" else ("applied", "unmatched"))
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        [attempt] = job_store.attempts_of(conn, job_id)
        header, *rows = export.rows(conn, campaign_id)
    assert job is not None and (job.state, job.last_outcome) == (JobState.COMPLETED, both.outcome)
    assert attempt.outcome == both.outcome
    assert attempt.result_data == dict(both.result_data)
    [row] = rows
    assert {k: v for k, v in zip(header, row, strict=True) if k in RESULT_FIELDS} == dict(both.exported)


# Provider-specific checks --------------------------------------------------------------


def test_provider_check(check: Any, kit: Kit) -> None:
    check(kit)


def test_provider_db_check(db_check: Any, kit: Kit, engine: Engine, settings: Settings) -> None:
    db_check(kit)
