"""NLPearl contract: the adapter's exact requests and readings (respx), the simulator's answers, webhook auth."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
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
from outdial.services.providers.base import text_values as call_data
from outdial.services.providers.nlpearl import (
    CALL_OUTCOMES,
    CONVERSATION_OUTCOMES,
    REQUEST_OUTCOMES,
    NLPearl,
    call_outcome,
)
from outdial.services.providers.transport import Timeouts, send
from outdial.settings import Settings
from outdial.simulator import nlpearl as sim_module
from outdial.simulator.app import create_app as create_sim
from outdial.simulator.base import DEMO_WEBHOOK_SECRET, SimConfig
from outdial.store import jobs as job_store

ADAPTER = NLPearl()
BASE = "https://api.nlpearl.ai"
URL = f"{BASE}/v1/Outbound/out-1/Call"
HOOK_URL = "http://hooks.test/webhooks/pearl"


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_NLP_ACCOUNT", "acc-123")
    monkeypatch.setenv("T_NLP_SECRET", "key-456")
    monkeypatch.setenv("T_NLP_WEBHOOK", "hook-secret")
    return Account(
        name="pearl",
        provider="nlpearl",
        base_url=BASE,
        credentials={"account_id": "T_NLP_ACCOUNT", "secret_key": "T_NLP_SECRET"},
        options={"outbound_id": "out-1"},
        webhook_secret_env="T_NLP_WEBHOOK",
    )


def call(**fields: Any) -> CallRequest:
    return CallRequest(**{"job_id": 7, "attempt": 1, "to_number": "+12125551234", **fields})


# (a) Requests as built ---------------------------------------------------------------


def test_make_call_request_shape(account: Account) -> None:
    request = ADAPTER.build_request(account, call(variables={"name": "Joe", "age": 41, "vip": True, "note": None}))
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["Authorization"] == "Bearer acc-123:key-456"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "to": "+12125551234",
        "callData": {"name": "Joe", "age": "41", "vip": "true"},
    }


def test_no_variables_sends_no_call_data(account: Account) -> None:
    assert json.loads(ADAPTER.build_request(account, call()).content) == {"to": "+12125551234"}


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"outbound_id": "camp 9"}, "/v1/Outbound/camp%209/Call"),
        ({"agent_id": "agent-2"}, "/v1/Outbound/agent-2/Call"),
        ({"outbound_id": "o-3", "agent_id": "agent-2"}, "/v1/Outbound/o-3/Call"),
    ],
)
def test_per_call_options_override_the_account(account: Account, options: dict[str, str], path: str) -> None:
    assert ADAPTER.build_request(account, call(options=options)).url.raw_path.decode() == path


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(min_size=1), json_values, max_size=6))
def test_call_data_values_are_always_strings(variables: dict[str, Any]) -> None:
    data = call_data(variables)
    assert all(isinstance(v, str) for v in data.values())
    assert set(data) == {k for k, v in variables.items() if v is not None}
    for key, value in variables.items():
        if isinstance(value, str):
            assert data[key] == value
        elif isinstance(value, list | dict):
            assert json.loads(data[key]) == value


# (a) Responses as read ---------------------------------------------------------------


def validation(errors: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": errors,
        "traceId": "00-abc-def-00",
    }


@pytest.mark.parametrize(
    ("answer", "verdict", "call_id", "code", "message_part"),
    [
        (
            httpx.Response(200, json={"id": "req-1", "from": "+1", "to": "+2", "queuePosition": 3}),
            "accepted",
            "req-1",
            None,
            None,
        ),
        (httpx.Response(200, text="ok"), "unknown", None, "no_call_id", None),
        (httpx.Response(200, json={"id": None, "queuePosition": 0}), "unknown", None, "no_call_id", None),
        (
            httpx.Response(400, json=validation({"To": ["The To field is required."]})),
            "rejected",
            None,
            "validation_error",
            "To: The To field is required.",
        ),
        (
            httpx.Response(400, json=validation({"outboundId": ["Outbound 'x' was not found."]})),
            "rejected",
            None,
            "validation_error",
            "outboundId: Outbound 'x' was not found.",
        ),
        (httpx.Response(401, headers={"WWW-Authenticate": "Bearer"}), "rejected", None, "401", "Unauthorized"),
        (
            httpx.Response(415, json={"title": "Unsupported Media Type", "status": 415}),
            "rejected",
            None,
            "415",
            "Unsupported Media Type",
        ),
        (
            httpx.Response(429, headers={"Retry-After": "7"}, json={"title": "Too Many Requests"}),
            "retry_safe",
            None,
            "429",
            "Too Many",
        ),
        (
            httpx.Response(500, json={"title": "An error occurred while processing your request."}),
            "unknown",
            None,
            "500",
            "error occurred",
        ),
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
    assert result.verdict == verdict
    assert result.provider_call_id == call_id
    assert result.http_status == answer.status_code
    assert result.error_code == code
    if message_part:
        assert result.message is not None and message_part in result.message
    if answer.status_code == 429:
        assert result.retry_after_s == 7.0


@pytest.mark.parametrize(
    ("failure", "verdict"),
    [(httpx.ConnectError("refused"), Verdict.RETRY_SAFE), (httpx.ReadTimeout("slow"), Verdict.UNKNOWN)],
)
@respx.mock
def test_transport_failures(account: Account, failure: Exception, verdict: Verdict) -> None:
    respx.post(URL).mock(side_effect=failure)
    assert send(httpx.Client(), ADAPTER, ADAPTER.build_request(account, call()), Timeouts()).result.verdict == verdict


# Outcome tables: one test per row, against expectations written out here -----------

EXPECTED_REQUEST = {1: None, 2: None, 10: None, 20: "failed", 100: "failed"}
EXPECTED_CALL = {3: None, 4: "completed", 5: "busy", 6: "failed", 7: "no_answer", 8: "failed"}
EXPECTED_CONVERSATION = {
    10: "no_answer",
    20: None,
    70: "voicemail",
    100: "completed",
    110: "completed",
    130: "completed",
    150: "no_answer",
    220: "failed",
    300: "failed",
    500: "failed",
}


def test_every_table_row_has_a_test() -> None:
    assert set(REQUEST_OUTCOMES) == set(EXPECTED_REQUEST)
    assert set(CALL_OUTCOMES) == set(EXPECTED_CALL)
    assert set(CONVERSATION_OUTCOMES) == set(EXPECTED_CONVERSATION)


@pytest.mark.parametrize(("status", "expected"), EXPECTED_REQUEST.items())
def test_call_request_status_row(account: Account, status: int, expected: str | None) -> None:
    body = {"id": "req-1", "status": status, "outboundId": "out-1", "created": "2026-01-01T00:00:00Z", "errors": []}
    event = ADAPTER.parse_status("req-1", httpx.Response(200, json={**body, "callId": None}))
    assert event is not None and event.outcome == expected
    assert event.provider_call_id == "req-1"
    assert event.raw_status.startswith(f"request:{status}:")


@pytest.mark.parametrize(("status", "expected"), EXPECTED_CALL.items())
def test_call_status_row(status: int, expected: str | None) -> None:
    assert call_outcome(status, None) == expected


@pytest.mark.parametrize(("conversation", "expected"), EXPECTED_CONVERSATION.items())
def test_conversation_status_row(conversation: int, expected: str | None) -> None:
    assert call_outcome(None, conversation) == expected


@pytest.mark.parametrize(
    ("status", "conversation", "expected"),
    [
        (4, 70, Outcome.VOICEMAIL),  # the line completed into a voicemail box
        (4, 150, Outcome.NO_ANSWER),
        (4, 100, Outcome.COMPLETED),
        (4, 20, Outcome.COMPLETED),
        (5, 100, Outcome.BUSY),  # a final call status is not overridden by a success
        (3, 100, None),  # still in progress, whatever the conversation says
        (99, None, None),  # unknown statuses are not taken for an end
    ],
)
def test_the_two_statuses_together(status: int, conversation: int | None, expected: Outcome | None) -> None:
    assert call_outcome(status, conversation) == expected


# Webhooks ----------------------------------------------------------------------------


def webhook_body(status: int, conversation: int, **extra: Any) -> bytes:
    payload = {
        "id": "call-9",
        "requestId": "req-1",
        "status": status,
        "conversationStatus": conversation,
        "from": "+12025550147",
        "to": "+12125551234",
        "duration": 31,
        "endTime": "2026-12-01T15:02:00Z",
        **extra,
    }
    return json.dumps(payload).encode()


def test_webhook_start_and_end_are_distinct_events_of_the_request() -> None:
    [start] = ADAPTER.parse_webhook(webhook_body(3, 20))
    [end] = ADAPTER.parse_webhook(webhook_body(4, 70))
    [again] = ADAPTER.parse_webhook(webhook_body(4, 70))
    assert start.provider_call_id == end.provider_call_id == "req-1"
    assert start.outcome is None and end.outcome == Outcome.VOICEMAIL
    assert start.event_key != end.event_key
    assert again.event_key == end.event_key  # a redelivery deduplicates
    assert end.raw_status == "4:Completed/70:VoiceMailLeft"
    assert end.ended_at is not None and end.ended_at.isoformat() == "2026-12-01T15:02:00+00:00"


def test_webhook_without_an_id_is_unreadable() -> None:
    with pytest.raises(ValueError):
        ADAPTER.parse_webhook(b'{"status": 4}')


def test_webhook_needs_the_shared_secret(account: Account) -> None:
    body = webhook_body(4, 100)
    ADAPTER.verify_webhook(account, {"authorization": "Bearer hook-secret"}, body, time.time())
    ADAPTER.verify_webhook(account, {"x-outdial-token": "hook-secret"}, body, time.time())
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "hook-secret"}):
        with pytest.raises(WebhookRefused):
            ADAPTER.verify_webhook(account, headers, body, time.time())


def test_api_refuses_a_webhook_without_the_secret_and_stores_nothing(
    engine: Engine, settings: Settings, account: Account
) -> None:
    client = TestClient(create_api(settings, engine, {"pearl": account}))
    body = webhook_body(4, 100)
    assert client.post("/webhooks/pearl", content=body).status_code == 401
    assert client.post("/webhooks/pearl", content=body, headers={"Authorization": "Bearer x"}).status_code == 401
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ProviderEvent)).scalar() == 0
    ok = client.post("/webhooks/pearl", content=body, headers={"Authorization": "Bearer hook-secret"})
    assert ok.status_code == 200 and ok.json()["received"] == 1
    again = client.post("/webhooks/pearl", content=body, headers={"Authorization": "Bearer hook-secret"})
    assert again.json()["results"] == ["duplicate"]


# Status look-ups ---------------------------------------------------------------------


def test_status_requests_and_the_follow_up_to_the_call(account: Account) -> None:
    request = ADAPTER.build_status_request(account, "req-1")
    assert request is not None and request.method == "GET"
    assert str(request.url) == f"{BASE}/v1/Outbound/CallRequest/req-1"
    assert request.headers["Authorization"] == "Bearer acc-123:key-456"
    queued = httpx.Response(200, json={"id": "req-1", "status": 1, "outboundId": "o", "errors": [], "callId": None})
    assert ADAPTER.status_follow_up(account, "req-1", queued) is None
    on_call = httpx.Response(200, json={"id": "req-1", "status": 2, "outboundId": "o", "errors": [], "callId": "c-5"})
    follow = ADAPTER.status_follow_up(account, "req-1", on_call)
    assert follow is not None and str(follow.url) == f"{BASE}/v2/Call/c-5"
    assert follow.headers["Authorization"] == "Bearer acc-123:key-456"
    the_call = httpx.Response(200, json={"id": "c-5", "status": 7, "conversationStatus": 10, "to": "+1"})
    event = ADAPTER.parse_status("req-1", the_call)
    assert event is not None and event.outcome == Outcome.NO_ANSWER and event.provider_call_id == "req-1"
    assert ADAPTER.parse_status("req-1", httpx.Response(404, json={"title": "Not Found"})) is None


# (b) Against the simulator -----------------------------------------------------------

SIM = sim_module.SIMULATOR


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
    SIM.configure({"webhook_url": HOOK_URL, "outcome_delay_s": 0.2, "seed": 1})
    with TestClient(create_sim()) as client:
        yield client
    SIM.reset()
    SIM.config = SimConfig()


@pytest.fixture
def sim_account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_SIM_NLP_ACCOUNT", "sim-account")
    monkeypatch.setenv("T_SIM_NLP_SECRET", "sim-key")
    monkeypatch.setenv("T_SIM_WEBHOOK", DEMO_WEBHOOK_SECRET)
    return Account(
        name="sim-nlpearl",
        provider="nlpearl",
        base_url="http://testserver",
        credentials={"account_id": "T_SIM_NLP_ACCOUNT", "secret_key": "T_SIM_NLP_SECRET"},
        options={"outbound_id": "sim-agent"},
        webhook_secret_env="T_SIM_WEBHOOK",
    )


AUTH = {"Authorization": "Bearer sim-account:sim-key"}
MAKE = "/v1/Outbound/sim-agent/Call"


def test_sim_accepts_the_adapters_request(sim: TestClient, sim_account: Account) -> None:
    request = ADAPTER.build_request(sim_account, call(variables={"name": "Ann", "n": 2}))
    response = sim.send(request)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "from", "to", "queuePosition"}
    assert body["to"] == "+12125551234" and isinstance(body["queuePosition"], int)
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.ACCEPTED and result.provider_call_id == body["id"]
    stats = sim.get("/_sim/stats").json()["providers"]["nlpearl"]
    assert stats["by_number"] == {"+12125551234": 1} and stats["accepted"] == 1


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/json", "application/merge-patch+json; charset=utf-8"]
)
def test_sim_takes_every_documented_content_type(sim: TestClient, content_type: str) -> None:
    response = sim.post(MAKE, content=b'{"to": "+442071234567"}', headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == 200, response.text


def test_sim_binds_property_names_case_insensitively(sim: TestClient) -> None:
    response = sim.post(MAKE, json={"To": "+442071234567", "CallData": {"a": "b"}}, headers=AUTH)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sim-account:wrong"},
        {"Authorization": "Bearer sim-key"},
        {"Authorization": "Basic sim-account:sim-key"},
    ],
)
def test_sim_enforces_auth(sim: TestClient, headers: dict[str, str]) -> None:
    response = sim.post(MAKE, json={"to": "+12125551234"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.content == b""
    assert SIM.stats()["accepted"] == 0


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({}, "To", "The To field is required."),
        ({"to": ""}, "To", "The To field is required."),
        ({"to": None}, "To", "The To field is required."),
        ({"to": "not a phone"}, "To", "not a valid phone number"),
        ({"to": 12125551234}, "$.to", "could not be converted to System.String"),
        ({"to": "+12125551234", "callData": {"age": 41}}, "$.callData.age", "could not be converted to System.String"),
        ({"to": "+12125551234", "callData": ["x"]}, "$.callData", "could not be converted to System.Collections"),
        ({"to": "+12125551234", "extra": 1}, "$", "could not be mapped to any .NET member"),
        ([], "$", "could not be converted to NLPearl.Core.Models.OutboundMakeCallRequest"),
    ],
)
def test_sim_validation_problems(sim: TestClient, body: Any, field: str, text: str) -> None:
    response = sim.post(MAKE, json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "One or more validation errors occurred."
    assert problem["status"] == 400
    assert problem["type"] == "https://tools.ietf.org/html/rfc9110#section-15.5.1"
    assert problem["traceId"].startswith("00-")
    assert any(text in message for message in problem["errors"][field])
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.REJECTED and result.error_code == "validation_error"
    assert text in (result.message or "")


def test_sim_unreadable_and_empty_bodies(sim: TestClient) -> None:
    broken = sim.post(MAKE, content=b'{"to": ', headers={**AUTH, "Content-Type": "application/json"})
    assert broken.status_code == 400 and "$" in broken.json()["errors"]
    assert broken.json()["errors"]["request"] == ["The request field is required."]
    empty = sim.post(MAKE, content=b"", headers={**AUTH, "Content-Type": "application/json"})
    assert empty.status_code == 400
    assert empty.json()["errors"][""] == ["A non-empty request body is required."]


def test_sim_refuses_other_media_types(sim: TestClient) -> None:
    response = sim.post(
        MAKE, content=b"to=+12125551234", headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert response.json()["title"] == "Unsupported Media Type"
    assert ADAPTER.parse_response(response).verdict == Verdict.REJECTED


def test_sim_unknown_outbound(sim: TestClient) -> None:
    response = sim.post("/v1/Outbound/nope/Call", json={"to": "+12125551234"}, headers=AUTH)
    assert response.status_code == 400
    assert "outboundId" in response.json()["errors"]


def test_sim_rate_limited_and_server_errors(sim: TestClient, sim_account: Account) -> None:
    SIM.configure({"rate_429_rate": 1.0})
    limited = sim.send(ADAPTER.build_request(sim_account, call()))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["title"] == "Too Many Requests"
    result = ADAPTER.parse_response(limited)
    assert result.verdict == Verdict.RETRY_SAFE and result.retry_after_s == 1.0
    SIM.configure({"rate_429_rate": 0.0, "error_5xx_rate": 1.0})
    failed = sim.send(ADAPTER.build_request(sim_account, call()))
    assert failed.status_code == 500
    assert failed.json()["title"] == "An error occurred while processing your request."
    assert ADAPTER.parse_response(failed).verdict == Verdict.UNKNOWN
    SIM.configure({"error_5xx_rate": 0.0, "rate_limit_per_minute": 1})
    assert sim.send(ADAPTER.build_request(sim_account, call())).status_code == 200
    assert sim.send(ADAPTER.build_request(sim_account, call())).status_code == 429
    assert SIM.stats()["by_number"] == {"+12125551234": 4} and SIM.stats()["accepted"] == 1


def wait_until_ended(request_id: str) -> None:
    deadline = time.monotonic() + 5
    while SIM.calls[request_id].ended is None:
        assert time.monotonic() < deadline, "the simulated call never ended"
        time.sleep(0.02)


def look_up(client: TestClient, account: Account, request_id: str) -> tuple[httpx.Response, Outcome | None]:
    """What a poller does: the call request, then its call when it has one."""
    request = ADAPTER.build_status_request(account, request_id)
    assert request is not None
    response = client.send(request)
    follow = ADAPTER.status_follow_up(account, request_id, response)
    final = client.send(follow) if follow is not None else response
    event = ADAPTER.parse_status(request_id, final)
    assert event is not None
    return response, event.outcome


@pytest.mark.parametrize("outcome", ["completed", "no_answer", "busy", "voicemail", "failed"])
def test_sim_status_api_follows_the_call(sim: TestClient, sim_account: Account, outcome: str) -> None:
    SIM.configure({"outcome_mix": {outcome: 1.0}})
    request_id = ADAPTER.parse_response(sim.send(ADAPTER.build_request(sim_account, call()))).provider_call_id
    assert request_id is not None
    during, known = look_up(sim, sim_account, request_id)
    assert during.json()["status"] == 2 and during.json()["callId"]
    assert set(during.json()) == {"id", "status", "outboundId", "created", "errors", "callId"}
    assert known is None
    call_view = sim.get(f"/v2/Call/{during.json()['callId']}", headers=AUTH).json()
    assert call_view["status"] == 3
    wait_until_ended(request_id)
    after, known = look_up(sim, sim_account, request_id)
    assert after.json()["status"] == 10
    assert known == outcome


def test_sim_status_api_auth_and_unknown_ids(sim: TestClient) -> None:
    assert sim.get("/v1/Outbound/CallRequest/nope").status_code == 401
    assert sim.get("/v2/Call/nope").status_code == 401
    missing = sim.get("/v1/Outbound/CallRequest/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["title"] == "Not Found"
    assert sim.get("/v2/Call/nope", headers=AUTH).status_code == 404


def test_sim_posts_start_and_end_webhooks_with_the_shared_secret(
    sim: TestClient, sim_account: Account, hooks: respx.Router
) -> None:
    SIM.configure({"outcome_mix": {"busy": 1.0}})
    request_id = ADAPTER.parse_response(sim.send(ADAPTER.build_request(sim_account, call()))).provider_call_id
    assert request_id is not None
    wait_until_ended(request_id)
    deadline = time.monotonic() + 5
    while len(hooks.calls) < 2:
        assert time.monotonic() < deadline, "the webhooks never came"
        time.sleep(0.02)
    events = []
    for sent, _ in hooks.calls:
        assert str(sent.url) == HOOK_URL
        headers = {k.lower(): v for k, v in sent.headers.items()}
        ADAPTER.verify_webhook(sim_account, headers, sent.content, time.time())
        events.extend(ADAPTER.parse_webhook(sent.content))
    assert {e.provider_call_id for e in events} == {request_id}
    assert sorted((e.outcome or "") for e in events) == ["", "busy"]
    assert len({e.event_key for e in events}) == 2


# End to end: dispatcher -> simulator -> webhook -> API -> job -------------------------

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York


def test_a_job_placed_on_the_simulator_completes_by_its_webhook(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhook names the call *request*, so it finds the attempt that holds the request id."""
    monkeypatch.setenv("T_E2E_NLP_ACCOUNT", "sim-account")
    monkeypatch.setenv("T_E2E_NLP_SECRET", "sim-key")
    with settings.accounts_file.open("a") as accounts_file:
        accounts_file.write(
            '\n[accounts.pearl-e2e]\nprovider = "nlpearl"\nbase_url = "http://testserver"\n'
            'credentials = { account_id = "T_E2E_NLP_ACCOUNT", secret_key = "T_E2E_NLP_SECRET" }\n'
            'webhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET"\noptions = { outbound_id = "sim-agent" }\n'
        )
    accounts = load_accounts(settings.accounts_file)
    hook_url = f"{settings.public_url}/webhooks/pearl-e2e"
    SIM.reset()
    SIM.config = SimConfig()
    SIM.configure(
        {
            "webhook_url": hook_url,
            "webhook_secret": "test-webhook-secret",
            "outcome_delay_s": 0.1,
            "webhook_duplicate_rate": 1.0,
        }
    )
    body = CallBody(to_number="+12125551234", account="pearl-e2e", timezone="America/New_York")
    job_id = enqueue_call(engine, body, NOW, settings).job_id
    Scheduler(engine, settings, lambda _: None).tick(NOW)
    api = TestClient(create_api(settings, engine, accounts))
    try:
        with respx.mock(assert_all_called=False) as mock, TestClient(create_sim()) as sim_client:
            route = mock.post(hook_url).mock(return_value=httpx.Response(200))
            assert Dispatcher(engine, settings, accounts, sim_client).dispatch(job_id, NOW) == Dispatched(Step.ACCEPTED)
            deadline = time.monotonic() + 5
            while route.call_count < 3:  # the start, and the end delivered twice
                assert time.monotonic() < deadline, "the webhooks never came"
                time.sleep(0.02)
            results = []
            for sent, _ in route.calls:
                answer = api.post("/webhooks/pearl-e2e", content=sent.content, headers=dict(sent.headers))
                assert answer.status_code == 200, answer.text
                results.extend(answer.json()["results"])
            assert SIM.stats()["by_number"] == {"+12125551234": 1}  # one request placed the call
    finally:
        SIM.reset()
        SIM.config = SimConfig()
    assert sorted(results) == ["applied", "duplicate", "noted"]
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == "completed" and job.last_outcome == "completed"
