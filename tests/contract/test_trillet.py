"""Trillet contract: the adapter's exact requests and readings (respx), the simulator's answers, signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from outdial.api.app import create_app as create_api
from outdial.models import ProviderEvent
from outdial.scheduler.loop import Scheduler
from outdial.services.dispatch import Dispatched, Dispatcher, Step
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.providers.accounts import Account, load_accounts
from outdial.services.providers.base import CallRequest, Outcome, Verdict, WebhookRefused
from outdial.services.providers.transport import Timeouts, send
from outdial.services.providers.trillet import DETAIL_OUTCOMES, EVENT_OUTCOMES, HISTORY_OUTCOMES, Trillet
from outdial.settings import Settings
from outdial.simulator import trillet as sim_module
from outdial.simulator.app import create_app as create_sim
from outdial.simulator.base import DEMO_WEBHOOK_SECRET, SimConfig
from outdial.store import jobs as job_store

ADAPTER = Trillet()
BASE = "https://api.trillet.ai"
URL = f"{BASE}/v1/api/call"
HOOK_URL = "http://hooks.test/webhooks/tr"
SECRET = "whsec_test_5f1c0ffee"


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_TRILLET_KEY", "tk-123")
    monkeypatch.setenv("T_TRILLET_WEBHOOK", SECRET)
    return Account(
        name="tr",
        provider="trillet",
        base_url=BASE,
        credentials={"api_key": "T_TRILLET_KEY"},
        options={"agent_id": "agent-1", "workspace_id": "ws-1"},
        webhook_secret_env="T_TRILLET_WEBHOOK",
    )


def call(**fields: Any) -> CallRequest:
    return CallRequest(**{"job_id": 7, "attempt": 2, "to_number": "+12125551234", **fields})


def signature(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# (a) Requests as built ---------------------------------------------------------------


def test_create_call_request_shape(account: Account) -> None:
    request = ADAPTER.build_request(
        account, call(variables={"firstName": "Joe", "age": 41, "tags": ["a"]}, callback_url=HOOK_URL)
    )
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["x-api-key"] == "tk-123"
    assert request.headers["x-workspace-id"] == "ws-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "to": "+12125551234",
        "call_agent_id": "agent-1",
        "dynamic_variables": {"firstName": "Joe", "age": "41", "tags": '["a"]'},
        "metadata": {"outdial_job_id": "7", "outdial_attempt": "2"},
        "callback_url": HOOK_URL,
    }


def test_per_call_options_override_the_account_and_no_callback_is_left_out(account: Account) -> None:
    request = ADAPTER.build_request(account, call(options={"agent_id": "agent-9", "workspace_id": "ws-9"}))
    body = json.loads(request.content)
    assert body["call_agent_id"] == "agent-9" and request.headers["x-workspace-id"] == "ws-9"
    assert "callback_url" not in body


# (a) Responses as read ---------------------------------------------------------------

SUCCESS = {
    "status": "success",
    "message": "Outbound call job scheduled for agent a1 to number +1234567890",
    "callId": "f9e8d7c6b5a4f3e2d1c0b9a8",
    "roomName": "a1-x7k2m9p4q1",
    "jobId": "123",
}


@pytest.mark.parametrize(
    ("answer", "verdict", "call_id", "code", "message_part"),
    [
        (httpx.Response(200, json=SUCCESS), "accepted", SUCCESS["callId"], None, None),
        (httpx.Response(200, json={"status": "success", "message": "queued"}), "unknown", None, "no_call_id", None),
        (
            httpx.Response(400, json={"status": "error", "message": "Missing required field: to"}),
            "rejected",
            None,
            "400",
            "Missing required field: to",
        ),
        (
            httpx.Response(401, json={"status": "error", "message": "Invalid API key"}),
            "rejected",
            None,
            "401",
            "Invalid API key",
        ),
        (httpx.Response(403, json={"status": "error", "message": "no access"}), "rejected", None, "403", "no access"),
        (
            httpx.Response(404, json={"status": "error", "message": "Agent not found"}),
            "rejected",
            None,
            "404",
            "Agent not found",
        ),
        (
            httpx.Response(429, json={"error": {"code": "rate_limit_exceeded", "message": "Slow down"}}),
            "retry_safe",
            None,
            "rate_limit_exceeded",
            "Slow down",
        ),
        (
            httpx.Response(500, json={"status": "error", "message": "Internal server error"}),
            "unknown",
            None,
            "500",
            "Internal",
        ),
        (httpx.Response(502, text="Bad Gateway"), "unknown", None, "502", "Bad Gateway"),
        (httpx.Response(503), "retry_safe", None, "503", None),
    ],
)
@respx.mock
def test_answers_are_classified(
    account: Account,
    answer: httpx.Response,
    verdict: str,
    call_id: str | None,
    code: str | None,
    message_part: str | None,
) -> None:
    respx.post(URL).mock(return_value=answer)
    result = send(httpx.Client(), ADAPTER, ADAPTER.build_request(account, call()), Timeouts()).result
    assert (result.verdict, result.provider_call_id, result.error_code) == (verdict, call_id, code)
    assert result.http_status == answer.status_code
    if message_part:
        assert result.message is not None and message_part in result.message


def limited(reset_at: object, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    error = {"code": "rate_limit_exceeded", "message": "Rate limit exceeded", "reset_at": reset_at}
    return httpx.Response(429, json={"error": error}, headers=headers)


@given(st.integers(min_value=0, max_value=3600), st.sampled_from(["iso", "iso-z", "seconds", "millis", "text"]))
def test_retry_after_comes_from_reset_at(delay: int, form: str) -> None:
    at = datetime.now(UTC) + timedelta(seconds=delay)
    reset_at: object = {
        "iso": at.isoformat(),
        "iso-z": at.isoformat().replace("+00:00", "Z"),
        "seconds": int(at.timestamp()),
        "millis": int(at.timestamp() * 1000),
        "text": str(int(at.timestamp())),
    }[form]
    result = ADAPTER.parse_response(limited(reset_at, retry_after="9999"))
    assert result.verdict == Verdict.RETRY_SAFE
    assert result.retry_after_s is not None and delay - 2 <= result.retry_after_s <= delay + 1


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (limited(None, retry_after="12"), 12.0),  # no reset_at: the header
        (limited("whenever", retry_after="5"), 5.0),  # an unreadable reset_at: the header
        (limited((datetime.now(UTC) - timedelta(minutes=1)).isoformat()), 0.0),  # already past
        (httpx.Response(429), None),
    ],
)
def test_retry_after_falls_back_to_the_header(answer: httpx.Response, expected: float | None) -> None:
    assert ADAPTER.parse_response(answer).retry_after_s == expected


@pytest.mark.parametrize(
    ("failure", "verdict"),
    [
        (httpx.ConnectError("refused"), Verdict.RETRY_SAFE),
        (httpx.ReadTimeout("slow"), Verdict.UNKNOWN),
        (httpx.RemoteProtocolError("dropped"), Verdict.UNKNOWN),
    ],
)
@respx.mock
def test_transport_failures(account: Account, failure: Exception, verdict: Verdict) -> None:
    respx.post(URL).mock(side_effect=failure)
    assert send(httpx.Client(), ADAPTER, ADAPTER.build_request(account, call()), Timeouts()).result.verdict == verdict


# Outcome tables: one test per row, against expectations written out here -----------

EXPECTED_EVENTS = {"call.started": None, "call.completed": "completed", "call.failed": "failed"}
EXPECTED_HISTORY = {"ongoing": None, "completed": "completed", "failed": "failed"}
EXPECTED_DETAILS = {
    "no_answer": "no_answer",
    "no-answer": "no_answer",
    "unanswered": "no_answer",
    "busy": "busy",
    "voicemail": "voicemail",
    "machine": "voicemail",
}


def test_every_table_row_has_a_test() -> None:
    assert set(EVENT_OUTCOMES) == set(EXPECTED_EVENTS)
    assert set(HISTORY_OUTCOMES) == set(EXPECTED_HISTORY)
    assert set(DETAIL_OUTCOMES) == set(EXPECTED_DETAILS)


def hook(event: str, status: str = "", call_id: str = "c-1", **data: Any) -> bytes:
    payload = {
        "event": event,
        "data": {"callId": call_id, "agentId": "agent-1", "duration": 12, "status": status, **data},
    }
    return json.dumps(payload).encode()


@pytest.mark.parametrize(("event", "expected"), EXPECTED_EVENTS.items())
def test_webhook_event_row(event: str, expected: str | None) -> None:
    [parsed] = ADAPTER.parse_webhook(hook(event))
    assert parsed.outcome == expected and parsed.raw_status == event and parsed.provider_call_id == "c-1"


@pytest.mark.parametrize(("status", "expected"), EXPECTED_HISTORY.items())
def test_call_history_row(status: str, expected: str | None) -> None:
    event = ADAPTER.parse_status("c-1", httpx.Response(200, json={"callId": "c-1", "status": status}))
    assert event is not None and event.outcome == expected and event.raw_status == status


@pytest.mark.parametrize(("detail", "expected"), EXPECTED_DETAILS.items())
def test_finer_status_row(detail: str, expected: str) -> None:
    [from_hook] = ADAPTER.parse_webhook(hook("call.failed", detail))
    history = ADAPTER.parse_status("c-1", httpx.Response(200, json={"status": "failed", "endReason": detail}))
    assert from_hook.outcome == expected and from_hook.raw_status == f"call.failed:{detail}"
    assert history is not None and history.outcome == expected


def test_a_finer_status_never_ends_a_call_that_is_not_over() -> None:
    [started] = ADAPTER.parse_webhook(hook("call.started", "busy"))
    assert started.outcome is None


def test_unknown_events_and_statuses_are_kept_not_taken_for_outcomes() -> None:
    [odd] = ADAPTER.parse_webhook(hook("call.transcribed", "completed"))
    assert odd.outcome is None
    assert ADAPTER.parse_status("c-1", httpx.Response(200, json={"status": "queued"})) is None
    assert ADAPTER.parse_status("c-1", httpx.Response(404, json={"status": "error"})) is None
    wrapped = ADAPTER.parse_status("c-1", httpx.Response(200, json={"data": {"status": "completed"}}))
    assert wrapped is not None and wrapped.outcome == Outcome.COMPLETED


def test_event_keys_deduplicate_redeliveries_and_tell_events_apart() -> None:
    keys = [ADAPTER.parse_webhook(hook(e))[0].event_key for e in ("call.started", "call.completed", "call.completed")]
    assert keys[0] != keys[1] and keys[1] == keys[2]
    other_call = ADAPTER.parse_webhook(hook("call.completed", call_id="c-2"))[0].event_key
    assert other_call != keys[1]


@pytest.mark.parametrize("body", [b"[]", b'{"event": "call.completed"}', b'{"event": "call.completed", "data": {}}'])
def test_unreadable_webhooks(body: bytes) -> None:
    with pytest.raises(ValueError):
        ADAPTER.parse_webhook(body)


def test_status_request(account: Account) -> None:
    request = ADAPTER.build_status_request(account, "c/1")
    assert request is not None and request.method == "GET"
    assert request.url.raw_path.decode() == "/v1/api/call-history/c%2F1"
    assert request.headers["x-api-key"] == "tk-123" and request.headers["x-workspace-id"] == "ws-1"


# (c) Webhook signatures --------------------------------------------------------------


def test_good_signature_passes(account: Account) -> None:
    body = hook("call.completed", "completed")
    ADAPTER.verify_webhook(account, {"x-trillet-signature": signature(body)}, body, time.time())
    ADAPTER.verify_webhook(account, {"x-trillet-signature": "sha256=" + signature(body).upper()}, body, time.time())


def test_forged_missing_and_replayed_signatures_fail(account: Account) -> None:
    body = hook("call.completed", "completed")
    other = hook("call.completed", "completed", call_id="c-2")
    refused = [
        {},  # missing
        {"x-trillet-signature": ""},
        {"x-trillet-signature": "0" * 64},  # forged
        {"x-trillet-signature": signature(body, "whsec_someone_else")},  # signed with another secret
        {"x-trillet-signature": signature(other)},  # a real signature replayed on another body
        {"authorization": f"Bearer {SECRET}"},  # the shared-secret style does not stand in for a signature
    ]
    for headers in refused:
        with pytest.raises(WebhookRefused):
            ADAPTER.verify_webhook(account, headers, body, time.time())


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=300))
def test_a_signature_covers_exactly_its_body(body: bytes, other: bytes) -> None:
    account = Account("tr", "trillet", BASE, webhook_secret_env="T_TRILLET_HYPO")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("T_TRILLET_HYPO", SECRET)
        ADAPTER.verify_webhook(account, {"x-trillet-signature": signature(body)}, body, 0)
        if other != body:
            with pytest.raises(WebhookRefused):
                ADAPTER.verify_webhook(account, {"x-trillet-signature": signature(body)}, other, 0)


def test_no_secret_configured_refuses_everything(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_TRILLET_WEBHOOK")
    body = hook("call.completed")
    with pytest.raises(WebhookRefused):
        ADAPTER.verify_webhook(account, {"x-trillet-signature": signature(body)}, body, time.time())


def test_api_refuses_bad_signatures_and_stores_nothing(engine: Engine, settings: Settings, account: Account) -> None:
    client = TestClient(create_api(settings, engine, {"tr": account}))
    body = hook("call.completed", "completed")
    other = hook("call.failed", "busy")
    for headers in ({}, {"X-Trillet-Signature": "0" * 64}, {"X-Trillet-Signature": signature(other)}):
        assert client.post("/webhooks/tr", content=body, headers=headers).status_code == 401
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ProviderEvent)).scalar() == 0
    good = {"X-Trillet-Signature": signature(body)}
    first = client.post("/webhooks/tr", content=body, headers=good)
    assert first.status_code == 200 and first.json()["received"] == 1
    assert client.post("/webhooks/tr", content=body, headers=good).json()["results"] == ["duplicate"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ProviderEvent)).scalar() == 1


# (b) Against the simulator -----------------------------------------------------------

SIM = sim_module.SIMULATOR
AUTH = {"x-api-key": "sim-key", "x-workspace-id": "sim-workspace"}
VALID = {"to": "+12125551234", "call_agent_id": "sim-agent"}


@pytest.fixture
def hooks() -> Iterator[respx.Router]:
    """Where the simulator's webhooks go: recorded, answered 200."""
    with respx.mock(assert_all_called=False) as mock:
        mock.post(HOOK_URL).mock(return_value=httpx.Response(200))
        yield mock


@pytest.fixture
def sim(hooks: respx.Router) -> Iterator[TestClient]:
    SIM.reset()
    SIM.config = SimConfig()
    SIM.configure({"outcome_delay_s": 0.2, "seed": 1, "webhook_url": "http://nowhere.test/"})
    with TestClient(create_sim()) as client:
        yield client
    SIM.reset()
    SIM.config = SimConfig()


@pytest.fixture
def sim_account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_SIM_TRILLET_KEY", "sim-key")
    monkeypatch.setenv("T_SIM_WEBHOOK", DEMO_WEBHOOK_SECRET)
    return Account(
        name="sim-trillet",
        provider="trillet",
        base_url="http://testserver",
        credentials={"api_key": "T_SIM_TRILLET_KEY"},
        options={"agent_id": "sim-agent", "workspace_id": "sim-workspace"},
        webhook_secret_env="T_SIM_WEBHOOK",
    )


def place(client: TestClient, account: Account) -> str:
    response = client.send(ADAPTER.build_request(account, call(variables={"firstName": "Ann"}, callback_url=HOOK_URL)))
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.ACCEPTED and result.provider_call_id, response.text
    return result.provider_call_id


def test_sim_accepts_the_adapters_request(sim: TestClient, sim_account: Account) -> None:
    response = sim.send(ADAPTER.build_request(sim_account, call(callback_url=HOOK_URL)))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "message", "callId", "roomName", "jobId"}
    assert body["status"] == "success" and body["roomName"].startswith("sim-agent-")
    assert body["message"] == "Outbound call job scheduled for agent sim-agent to number +12125551234"
    stats = sim.get("/_sim/stats").json()["providers"]["trillet"]
    assert stats["by_number"] == {"+12125551234": 1} and stats["accepted_by_number"] == {"+12125551234": 1}


def test_sim_accepts_the_documented_minimum(sim: TestClient) -> None:
    assert sim.post("/v1/api/call", json=VALID, headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "Missing API key"),
        ({"x-api-key": "wrong", "x-workspace-id": "sim-workspace"}, 401, "Invalid API key"),
        ({"x-api-key": "sim-key"}, 400, "x-workspace-id"),
        ({"x-api-key": "sim-key", "x-workspace-id": "other"}, 403, "workspace"),
    ],
)
def test_sim_enforces_auth(sim: TestClient, headers: dict[str, str], status: int, message: str) -> None:
    for response in (
        sim.post("/v1/api/call", json=VALID, headers=headers),
        sim.get("/v1/api/call-history/anything", headers=headers),
    ):
        assert response.status_code == status
        assert response.json()["status"] == "error" and message in response.json()["message"]
    assert SIM.stats()["accepted"] == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"call_agent_id": "sim-agent"}, 400, "Missing required field: to"),
        ({"to": "+12125551234"}, 400, "Missing required field: call_agent_id"),
        ({**VALID, "to": "2125551234"}, 400, "E.164"),
        ({**VALID, "to": 12125551234}, 400, "Invalid to"),
        ({**VALID, "callback_url": "not a url"}, 400, "callback_url"),
        ({**VALID, "callback_url": "ftp://x.test/"}, 400, "callback_url"),
        ({**VALID, "dynamic_variables": ["x"]}, 400, "dynamic_variables"),
        ({**VALID, "metadata": "x"}, 400, "metadata"),
        ({**VALID, "call_agent_id": "nobody"}, 404, "Agent not found"),
    ],
)
def test_sim_validation(sim: TestClient, body: dict[str, Any], status: int, message: str) -> None:
    response = sim.post("/v1/api/call", json=body, headers=AUTH)
    assert response.status_code == status
    assert response.json()["status"] == "error" and message in response.json()["message"]
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.REJECTED and message in (result.message or "")


def test_sim_unreadable_body(sim: TestClient) -> None:
    response = sim.post("/v1/api/call", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json() == {"status": "error", "message": "Invalid JSON body"}


def test_sim_rate_limit_answers_as_documented(sim: TestClient, sim_account: Account) -> None:
    SIM.configure({"rate_limit_per_minute": 1})
    assert sim.post("/v1/api/call", json=VALID, headers=AUTH).status_code == 200
    response = sim.post("/v1/api/call", json=VALID, headers=AUTH)
    assert response.status_code == 429
    error = response.json()["error"]
    assert set(response.json()) == {"error"} and error["code"] == "rate_limit_exceeded" and error["message"]
    reset_at = datetime.fromisoformat(error["reset_at"].replace("Z", "+00:00"))
    assert timedelta(0) < reset_at - datetime.now(UTC) <= timedelta(seconds=61)
    assert 1 <= int(response.headers["retry-after"]) <= 60
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.RETRY_SAFE and result.error_code == "rate_limit_exceeded"
    assert result.retry_after_s is not None and 0 < result.retry_after_s <= 61
    assert SIM.stats()["by_number"] == {"+12125551234": 2} and SIM.stats()["accepted"] == 1


def test_sim_server_error(sim: TestClient, sim_account: Account) -> None:
    SIM.configure({"error_5xx_rate": 1.0})
    response = sim.send(ADAPTER.build_request(sim_account, call()))
    assert response.status_code == 500 and response.json() == {"status": "error", "message": "Internal server error"}
    assert ADAPTER.parse_response(response).verdict == Verdict.UNKNOWN


def wait_until_ended(call_id: str) -> None:
    deadline = time.monotonic() + 5
    while SIM.calls[call_id].ended is None:
        assert time.monotonic() < deadline, "the simulated call never ended"
        time.sleep(0.02)


@pytest.mark.parametrize("outcome", ["completed", "no_answer", "busy", "voicemail", "failed"])
def test_sim_call_history_follows_the_call(sim: TestClient, sim_account: Account, outcome: str) -> None:
    SIM.configure({"outcome_mix": {outcome: 1.0}})
    call_id = place(sim, sim_account)
    request = ADAPTER.build_status_request(sim_account, call_id)
    assert request is not None
    during = sim.send(request)
    assert during.status_code == 200 and during.json()["status"] == "ongoing"
    event = ADAPTER.parse_status(call_id, during)
    assert event is not None and event.outcome is None
    wait_until_ended(call_id)
    after = sim.send(request)
    expected_status = "completed" if outcome in ("completed", "voicemail") else "failed"
    assert after.json()["status"] == expected_status
    event = ADAPTER.parse_status(call_id, after)
    assert event is not None and event.outcome == outcome


def test_sim_call_history_unknown_call(sim: TestClient) -> None:
    response = sim.get("/v1/api/call-history/nope", headers=AUTH)
    assert response.status_code == 404 and response.json() == {"status": "error", "message": "Call not found"}


def test_sim_signs_its_webhooks_to_the_callback_url(sim: TestClient, sim_account: Account, hooks: respx.Router) -> None:
    SIM.configure({"outcome_mix": {"busy": 1.0}})
    call_id = place(sim, sim_account)
    wait_until_ended(call_id)
    deadline = time.monotonic() + 5
    while len(hooks.calls) < 2:
        assert time.monotonic() < deadline, "the webhooks never came"
        time.sleep(0.02)
    seen = []
    for sent, _ in hooks.calls:
        assert str(sent.url) == HOOK_URL
        headers = {k.lower(): v for k, v in sent.headers.items()}
        ADAPTER.verify_webhook(sim_account, headers, sent.content, time.time())
        with pytest.raises(WebhookRefused):  # the same signature on a changed body
            ADAPTER.verify_webhook(sim_account, headers, sent.content.replace(call_id.encode(), b"forged"), time.time())
        payload = json.loads(sent.content)
        assert set(payload["data"]) >= {"callId", "agentId", "duration", "status"}
        assert payload["data"]["metadata"] == {"outdial_job_id": "7", "outdial_attempt": "2"}
        seen.extend(ADAPTER.parse_webhook(sent.content))
    assert sorted(e.raw_status for e in seen) == ["call.failed:busy", "call.started:ongoing"]
    assert {e.provider_call_id for e in seen} == {call_id}
    assert [e.outcome for e in seen if e.outcome] == [Outcome.BUSY]


# End to end: dispatcher -> simulator -> signed webhook -> API -> job -----------------

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York


def test_a_job_placed_on_the_simulator_ends_by_its_signed_webhook(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator posts to the callback_url the dispatcher sent, signed; a forged copy changes nothing."""
    monkeypatch.setenv("T_E2E_TRILLET_KEY", "sim-key")
    with settings.accounts_file.open("a") as accounts_file:
        accounts_file.write(
            '\n[accounts.tr-e2e]\nprovider = "trillet"\nbase_url = "http://testserver"\n'
            'credentials = { api_key = "T_E2E_TRILLET_KEY" }\nwebhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET"\n'
            'options = { agent_id = "sim-agent", workspace_id = "sim-workspace" }\n'
        )
    accounts = load_accounts(settings.accounts_file)
    callback = f"{settings.public_url}/webhooks/tr-e2e"
    SIM.reset()
    SIM.config = SimConfig()
    SIM.configure({"webhook_secret": "test-webhook-secret", "outcome_delay_s": 0.1, "outcome_mix": {"voicemail": 1}})
    body = CallBody(to_number="+12125551234", account="tr-e2e", timezone="America/New_York", number_of_retries=0)
    job_id = enqueue_call(engine, body, NOW, settings).job_id
    Scheduler(engine, settings, lambda _: None).tick(NOW)
    api = TestClient(create_api(settings, engine, accounts))
    try:
        with respx.mock(assert_all_called=False) as mock, TestClient(create_sim()) as sim_client:
            route = mock.post(callback).mock(return_value=httpx.Response(200))
            assert Dispatcher(engine, settings, accounts, sim_client).dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
            deadline = time.monotonic() + 5
            while route.call_count < 2:
                assert time.monotonic() < deadline, "the webhooks never came"
                time.sleep(0.02)
            sent_bodies = [(sent.content, dict(sent.headers)) for sent, _ in route.calls]
            assert SIM.stats()["by_number"] == {"+12125551234": 1}
    finally:
        SIM.reset()
        SIM.config = SimConfig()
    ended = next(content for content, _ in sent_bodies if b"call.completed" in content)
    forged = ended.replace(b"voicemail", b"completed")
    good_signature = next(h for c, h in sent_bodies if c == ended)["x-trillet-signature"]
    refused = api.post("/webhooks/tr-e2e", content=forged, headers={"X-Trillet-Signature": good_signature})
    assert refused.status_code == 401
    results = []
    for content, headers in sent_bodies * 2:  # every delivery twice: the second changes nothing
        answer = api.post("/webhooks/tr-e2e", content=content, headers=headers)
        assert answer.status_code == 200, answer.text
        results.extend(answer.json()["results"])
    assert sorted(results) == ["applied", "duplicate", "duplicate", "noted"]
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.last_outcome == "voicemail" and job.state == "completed"
