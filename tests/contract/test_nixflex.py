"""Nixflex contract: the adapter's exact requests and readings (respx), the simulator's answers, signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
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
from outdial.services.providers.accounts import Account, AccountError, load_accounts
from outdial.services.providers.base import CallRequest, Outcome, Verdict, WebhookRefused
from outdial.services.providers.nixflex import CALL_STATUS_OUTCOMES, ENDED_REASON_OUTCOMES, Nixflex
from outdial.services.providers.transport import Timeouts, send
from outdial.settings import Settings
from outdial.simulator import nixflex as sim_module
from outdial.simulator.app import create_app as create_sim
from outdial.simulator.base import DEMO_WEBHOOK_SECRET, SimConfig
from outdial.store import jobs as job_store

ADAPTER = Nixflex()
BASE = "https://api.nixflex.com"
URL = f"{BASE}/v1/calls/outbound"
HOOK_URL = "http://hooks.test/webhooks/nx"
SECRET = "nx-webhook-secret"
PROMPT = "Remind {patient_name} about {appointment_time}."


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_NIXFLEX_KEY_ID", "key_abc")
    monkeypatch.setenv("T_NIXFLEX_KEY_SECRET", "sec_xyz")
    monkeypatch.setenv("T_NIXFLEX_WEBHOOK", SECRET)
    return Account(
        name="nx",
        provider="nixflex",
        base_url=BASE,
        credentials={"key_id": "T_NIXFLEX_KEY_ID", "key_secret": "T_NIXFLEX_KEY_SECRET"},
        options={"agent_id": "agent_1", "prompt": PROMPT},
        webhook_secret_env="T_NIXFLEX_WEBHOOK",
    )


def call(**fields: Any) -> CallRequest:
    return CallRequest(**{"job_id": 7, "attempt": 2, "to_number": "+447386172392", **fields})


def v1(body: bytes, t: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def signature(body: bytes, t: int, secret: str = SECRET) -> dict[str, str]:
    return {"x-nixflex-signature": f"t={t},v1={v1(body, t, secret)}"}


# (a) Requests as built ---------------------------------------------------------------


def test_create_call_request_shape(account: Account) -> None:
    variables = {"patient_name": "Sarah", "appointment_time": "Tuesday at 2pm", "visits": 3, "vip": True, "x": None}
    request = ADAPTER.build_request(account, call(variables=variables, callback_url=HOOK_URL))
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["Authorization"] == "Bearer key_abc:sec_xyz"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "agent_id": "agent_1",
        "to_number": "+447386172392",  # to_number, never to
        "prompt": PROMPT,
        "dynamic_vars": {"patient_name": "Sarah", "appointment_time": "Tuesday at 2pm", "visits": "3", "vip": "true"},
    }


def test_per_call_options_override_the_account(account: Account) -> None:
    options = {"agent_id": "agent_9", "prompt": "Call {name}.", "from_number": "+447446466847", "campaign_id": "c-1"}
    body = json.loads(ADAPTER.build_request(account, call(options=options)).content)
    assert body["agent_id"] == "agent_9" and body["prompt"] == "Call {name}."
    assert body["from_number"] == "+447446466847" and body["campaign_id"] == "c-1"


def test_account_from_number_is_sent(account: Account) -> None:
    with_from = Account(**{**account.__dict__, "options": {**account.options, "from_number": "+14155550100"}})
    assert json.loads(ADAPTER.build_request(with_from, call()).content)["from_number"] == "+14155550100"


@pytest.mark.parametrize("options", [{"prompt": "   "}, {"prompt": ""}])
def test_a_blank_prompt_is_a_configuration_fault(account: Account, options: dict[str, str]) -> None:
    with pytest.raises(AccountError, match="prompt"):
        ADAPTER.build_request(account, call(options=options))


def test_no_prompt_anywhere_is_a_configuration_fault(account: Account) -> None:
    bare = Account(**{**account.__dict__, "options": {"agent_id": "agent_1"}})
    with pytest.raises(AccountError, match="prompt"):
        ADAPTER.build_request(bare, call())


# (a) Responses as read ---------------------------------------------------------------

SUCCESS = {"call_id": "CA1234567890", "status": "initiated", "to": "+447386172392", "from": "+447446466847"}
DOCUMENTED_400 = [
    "missing_field",
    "invalid_phone_format",
    "from_number_not_found",
    "agent_missing_phone_number",
    "agent_missing_twilio_credentials",
]


def nested(status: int, code: str, message: str = "why", details: dict[str, Any] | None = None) -> httpx.Response:
    error = {"type": "invalid_request_error", "code": code, "message": message, "details": details or {}}
    return httpx.Response(status, json={"error": error})


def test_201_is_accepted() -> None:
    result = ADAPTER.parse_response(httpx.Response(201, json=SUCCESS))
    assert (result.verdict, result.provider_call_id, result.http_status) == (Verdict.ACCEPTED, "CA1234567890", 201)


def test_2xx_without_a_call_id_is_unknown() -> None:
    result = ADAPTER.parse_response(httpx.Response(201, json={"status": "initiated"}))
    assert result.verdict == Verdict.UNKNOWN and result.error_code == "no_call_id"


@pytest.mark.parametrize("code", DOCUMENTED_400)
@pytest.mark.parametrize("shape", ["nested", "flat", "flat-error-string"])
def test_every_documented_400_is_rejected_with_its_code(code: str, shape: str) -> None:
    answer = {
        "nested": nested(400, code, f"{code} happened"),
        "flat": httpx.Response(400, json={"code": code, "message": f"{code} happened"}),
        "flat-error-string": httpx.Response(400, json={"error": code, "message": f"{code} happened"}),
    }[shape]
    result = ADAPTER.parse_response(answer)
    assert (result.verdict, result.error_code, result.http_status) == (Verdict.REJECTED, code, 400)
    assert result.message == f"{code} happened"


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_outbound_failed_is_rejected_never_resent(shape: str) -> None:
    """502 outbound_failed: Twilio refused the dial, no call exists; the SDK never re-sends after a 5xx."""
    twilio = {"code": 21217, "message": "Phone number does not appear to be valid"}
    flat = {"code": "outbound_failed", "message": "Twilio rejected the dial", "details": {"twilio_error": twilio}}
    answer = (
        nested(502, "outbound_failed", "Twilio rejected the dial", {"twilio_error": twilio})
        if shape == "nested"
        else httpx.Response(502, json=flat)
    )
    result = ADAPTER.parse_response(answer)
    assert (result.verdict, result.error_code, result.http_status) == (Verdict.REJECTED, "outbound_failed", 502)
    assert result.message is not None and "Twilio rejected the dial" in result.message and "21217" in result.message


@pytest.mark.parametrize(
    ("answer", "verdict", "code"),
    [
        (nested(401, "invalid_api_key"), Verdict.REJECTED, "invalid_api_key"),
        (nested(404, "agent_not_found"), Verdict.REJECTED, "agent_not_found"),
        (nested(500, "internal_error"), Verdict.UNKNOWN, "internal_error"),
        (httpx.Response(502, text="Bad Gateway"), Verdict.UNKNOWN, "502"),
        (httpx.Response(503, json={"error": {"code": "unavailable"}}), Verdict.UNKNOWN, "unavailable"),
        (httpx.Response(504), Verdict.UNKNOWN, "504"),
    ],
)
def test_other_answers(answer: httpx.Response, verdict: Verdict, code: str) -> None:
    result = ADAPTER.parse_response(answer)
    assert (result.verdict, result.error_code) == (verdict, code)


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_429_is_retry_safe_after_retry_after(shape: str) -> None:
    headers = {"Retry-After": "7", "X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "0"}
    body = (
        {"error": {"type": "rate_limit_error", "code": "rate_limit_exceeded", "message": "Slow down"}}
        if shape == "nested"
        else {"code": "rate_limit_exceeded", "message": "Slow down"}
    )
    result = ADAPTER.parse_response(httpx.Response(429, json=body, headers=headers))
    assert (result.verdict, result.error_code, result.retry_after_s) == (Verdict.RETRY_SAFE, "rate_limit_exceeded", 7)


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


@respx.mock
def test_sent_through_the_transport(account: Account) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(201, json=SUCCESS))
    result = send(httpx.Client(), ADAPTER, ADAPTER.build_request(account, call()), Timeouts()).result
    assert result.verdict == Verdict.ACCEPTED and route.call_count == 1


# Outcome tables: one test per row, against expectations written out here -----------

EXPECTED_REASONS = {
    "agent_hangup": "completed",
    "caller_hangup": "completed",
    "max_duration": "completed",
    "silence_timeout": "no_answer",
    "voicemail": "voicemail",
    "error": "failed",
}
EXPECTED_STATUSES = {
    "initiated": None,
    "queued": None,
    "ringing": None,
    "in-progress": None,
    "no-answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "no_answer",
}


def test_every_table_row_has_a_test() -> None:
    assert set(ENDED_REASON_OUTCOMES) == set(EXPECTED_REASONS)
    assert set(CALL_STATUS_OUTCOMES) == set(EXPECTED_STATUSES)


def hook(call_id: str = "CA1", status: str = "completed", reason: str = "agent_hangup", **more: Any) -> bytes:
    payload = {"event": "call.completed", "call_id": call_id, "status": status, "ended_reason": reason, **more}
    return json.dumps({**payload, "transcript": "Agent: hi"}).encode()


@pytest.mark.parametrize(("reason", "expected"), EXPECTED_REASONS.items())
def test_ended_reason_row(reason: str, expected: str) -> None:
    [event] = ADAPTER.parse_webhook(hook(reason=reason))
    assert event.outcome == expected and event.raw_status == f"completed:{reason}"
    assert event.provider_call_id == "CA1"
    looked_up = ADAPTER.parse_status("CA1", httpx.Response(200, json={"status": "completed", "ended_reason": reason}))
    assert looked_up is not None and looked_up.outcome == expected


@pytest.mark.parametrize(("status", "expected"), EXPECTED_STATUSES.items())
def test_call_status_row(status: str, expected: str | None) -> None:
    looked_up = ADAPTER.parse_status("CA1", httpx.Response(200, json={"call_id": "CA1", "status": status}))
    assert looked_up is not None and looked_up.outcome == expected and looked_up.raw_status == status


def test_a_failure_status_says_more_than_the_reason_the_line_closed() -> None:
    [busy] = ADAPTER.parse_webhook(hook(status="busy", reason="error"))
    [no_answer] = ADAPTER.parse_webhook(hook(status="no-answer", reason="silence_timeout"))
    assert (busy.outcome, no_answer.outcome) == (Outcome.BUSY, Outcome.NO_ANSWER)


def test_a_completed_call_with_a_reason_we_do_not_know() -> None:
    [odd] = ADAPTER.parse_webhook(hook(status="", reason="solar_flare"))
    assert odd.outcome == Outcome.FAILED  # call.completed means it is over, whatever the reason
    [twilio_completed] = ADAPTER.parse_webhook(hook(status="completed", reason=""))
    assert twilio_completed.outcome == Outcome.COMPLETED


def test_unknown_events_are_kept_not_taken_for_outcomes() -> None:
    body = json.dumps({"event": "call.analyzed", "call_id": "CA1", "status": "completed"}).encode()
    [event] = ADAPTER.parse_webhook(body)
    assert event.outcome is None and event.event_key == "CA1:call.analyzed"


def test_event_keys_deduplicate_redeliveries() -> None:
    first = ADAPTER.parse_webhook(hook(reason="voicemail"))[0]
    again = ADAPTER.parse_webhook(hook(reason="voicemail", delivery_attempt=2))[0]
    other = ADAPTER.parse_webhook(hook(call_id="CA2", reason="voicemail"))[0]
    assert first.event_key == again.event_key != other.event_key


def test_ended_at_is_read() -> None:
    [event] = ADAPTER.parse_webhook(hook(ended_at="2026-12-01T15:02:03Z"))
    assert event.ended_at == datetime(2026, 12, 1, 15, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize("body", [b"[]", b'{"event": "call.completed"}', b"not json"])
def test_unreadable_webhooks(body: bytes) -> None:
    with pytest.raises(ValueError):
        ADAPTER.parse_webhook(body)


def test_status_request(account: Account) -> None:
    request = ADAPTER.build_status_request(account, "CA/1")
    assert request is not None and request.method == "GET"
    assert str(request.url) == f"{BASE}/v1/calls/CA%2F1"
    assert request.headers["Authorization"] == "Bearer key_abc:sec_xyz"


def test_status_of_an_unknown_call_teaches_nothing() -> None:
    not_found = nested(404, "call_not_found", "No call with id CA9")
    assert ADAPTER.parse_status("CA9", not_found) is None
    assert ADAPTER.parse_status("CA9", httpx.Response(200, json={"call_id": "CA9"})) is None


# (c) Webhook signatures --------------------------------------------------------------

NOW = 1_800_000_000


def test_good_signature_passes(account: Account) -> None:
    body = hook()
    ADAPTER.verify_webhook(account, signature(body, NOW), body, NOW)
    ADAPTER.verify_webhook(account, signature(body, NOW - 300), body, NOW)  # the edge of the tolerance
    ADAPTER.verify_webhook(account, signature(body, NOW + 300), body, NOW)
    spaced = {"x-nixflex-signature": f"t={NOW}, v1={'0' * 64}, v1={v1(body, NOW).upper()}"}  # a rotated key
    ADAPTER.verify_webhook(account, spaced, body, NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,  # missing
        "",
        f"t={NOW},v1={'0' * 64}",  # forged
        f"v1={'a' * 64}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t=abc,v1={'a' * 64}",  # a timestamp that is not a number
        f"t={NOW},v1=xyz",  # a signature that is not hex
        f"t={NOW},v1={'a' * 63}",  # too short
        "garbage",
        f"t={NOW},t={NOW},v1={'a' * 64}",  # two timestamps
        "sha256=" + "a" * 64,  # another provider's style
    ],
)
def test_forged_missing_and_malformed_signatures_fail(account: Account, header: str | None) -> None:
    body = hook()
    headers = {} if header is None else {"x-nixflex-signature": header}
    with pytest.raises(WebhookRefused):
        ADAPTER.verify_webhook(account, headers, body, NOW)


@pytest.mark.parametrize("age", [301, 3600, -301, -86400])
def test_stale_and_future_timestamps_fail(account: Account, age: int) -> None:
    body = hook()
    with pytest.raises(WebhookRefused, match="tolerance"):
        ADAPTER.verify_webhook(account, signature(body, NOW - age), body, NOW)


def test_other_secrets_and_other_bodies_fail(account: Account) -> None:
    body = hook()
    for headers in (
        signature(body, NOW, "someone-else"),
        signature(hook(call_id="CA2"), NOW),  # a real signature replayed on another body
        {"x-nixflex-signature": f"t={NOW + 1},v1={v1(body, NOW)}"},  # the timestamp is signed too
        {"authorization": f"Bearer {SECRET}"},  # a shared secret does not stand in for a signature
    ):
        with pytest.raises(WebhookRefused):
            ADAPTER.verify_webhook(account, headers, body, NOW)


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=300), st.integers(min_value=-300, max_value=300))
def test_a_signature_covers_exactly_its_body(body: bytes, other: bytes, skew: int) -> None:
    account = Account("nx", "nixflex", BASE, webhook_secret_env="T_NIXFLEX_HYPO")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("T_NIXFLEX_HYPO", SECRET)
        ADAPTER.verify_webhook(account, signature(body, NOW + skew), body, NOW)
        if other != body:
            with pytest.raises(WebhookRefused):
                ADAPTER.verify_webhook(account, signature(body, NOW + skew), other, NOW)


def test_the_key_secret_signs_when_no_webhook_secret_is_set(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nixflex's document: the key secret is the signing key."""
    monkeypatch.delenv("T_NIXFLEX_WEBHOOK")
    body = hook()
    ADAPTER.verify_webhook(account, signature(body, NOW, "sec_xyz"), body, NOW)
    with pytest.raises(WebhookRefused):
        ADAPTER.verify_webhook(account, signature(body, NOW), body, NOW)


def test_no_secret_at_all_refuses_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    bare = Account("nx", "nixflex", BASE)
    body = hook()
    with pytest.raises(WebhookRefused):
        ADAPTER.verify_webhook(bare, signature(body, NOW, ""), body, NOW)


def test_api_refuses_bad_signatures_and_stores_nothing(engine: Engine, settings: Settings, account: Account) -> None:
    client = TestClient(create_api(settings, engine, {"nx": account}))
    body = hook()
    now = int(time.time())
    for headers in (
        {},
        {"X-Nixflex-Signature": f"t={now},v1={'0' * 64}"},
        {"X-Nixflex-Signature": f"t={now - 600},v1={v1(body, now - 600)}"},  # replayed after 10 minutes
        {"X-Nixflex-Signature": "t=now,v1=nope"},
    ):
        assert client.post("/webhooks/nx", content=body, headers=headers).status_code == 401
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ProviderEvent)).scalar() == 0
    good = {"X-Nixflex-Signature": f"t={now},v1={v1(body, now)}"}
    first = client.post("/webhooks/nx", content=body, headers=good)
    assert first.status_code == 200 and first.json()["received"] == 1
    assert client.post("/webhooks/nx", content=body, headers=good).json()["results"] == ["duplicate"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ProviderEvent)).scalar() == 1


# (b) Against the simulator -----------------------------------------------------------

SIM = sim_module.SIMULATOR
AUTH = {"Authorization": "Bearer sim-key:sim-secret"}
VALID = {"agent_id": "sim-agent", "to_number": "+447386172392", "prompt": "Hello {name}"}


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
    SIM.configure({"outcome_delay_s": 0.2, "seed": 1, "webhook_url": HOOK_URL})
    with TestClient(create_sim()) as client:
        yield client
    SIM.reset()
    SIM.config = SimConfig()


@pytest.fixture
def sim_account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_SIM_NIXFLEX_KEY_ID", "sim-key")
    monkeypatch.setenv("T_SIM_NIXFLEX_KEY_SECRET", "sim-secret")
    monkeypatch.setenv("T_SIM_WEBHOOK", DEMO_WEBHOOK_SECRET)
    return Account(
        name="sim-nixflex",
        provider="nixflex",
        base_url="http://testserver",
        credentials={"key_id": "T_SIM_NIXFLEX_KEY_ID", "key_secret": "T_SIM_NIXFLEX_KEY_SECRET"},
        options={"agent_id": "sim-agent", "from_number": "+14155550100", "prompt": "Confirm {name} on {day}."},
        webhook_secret_env="T_SIM_WEBHOOK",
    )


def place(client: TestClient, account: Account, **fields: Any) -> str:
    response = client.send(ADAPTER.build_request(account, call(variables={"name": "Ann", "day": "Friday"}, **fields)))
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.ACCEPTED and result.provider_call_id, response.text
    return result.provider_call_id


def test_sim_accepts_the_adapters_request(sim: TestClient, sim_account: Account) -> None:
    response = sim.send(ADAPTER.build_request(sim_account, call()))
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"call_id", "status", "to", "from"}
    assert body["status"] == "initiated" and body["to"] == "+447386172392" and body["from"] == "+14155550100"
    assert body["call_id"].startswith("CA") and len(body["call_id"]) == 34
    stats = sim.get("/_sim/stats").json()["providers"]["nixflex"]
    assert stats["by_number"] == {"+447386172392": 1} and stats["accepted_by_number"] == {"+447386172392": 1}


@pytest.mark.parametrize(
    ("changes", "from_number"),
    [
        ({}, "+14155550100"),  # the agent's first outbound-enabled number
        ({"from_number": "+14155550100"}, "+14155550100"),
        ({"agent_id": "sim-agent-legacy"}, "+14155550104"),  # the legacy number on the agent
        ({"campaign_id": "camp-1", "dynamic_vars": {"name": "Ann"}}, "+14155550100"),
    ],
)
def test_sim_accepts_documented_requests(sim: TestClient, changes: dict[str, Any], from_number: str) -> None:
    response = sim.post("/v1/calls/outbound", json={**VALID, **changes}, headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.json()["from"] == from_number


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"to_number": "+447386172392", "prompt": "p"}, "missing_field", "agent_id"),
        ({"agent_id": "sim-agent", "prompt": "p"}, "missing_field", "to_number"),
        ({"agent_id": "sim-agent", "to": "+447386172392", "prompt": "p"}, "missing_field", "to_number"),
        ({"agent_id": "sim-agent", "to_number": "+447386172392"}, "missing_field", "prompt"),
        ({**VALID, "prompt": "   "}, "missing_field", "prompt"),
        ({**VALID, "agent_id": ""}, "missing_field", "agent_id"),
        ({**VALID, "to_number": "07386172392"}, "invalid_phone_format", "to_number"),
        ({**VALID, "to_number": "+44 7386 172392"}, "invalid_phone_format", "to_number"),
        ({**VALID, "to_number": "+0447386172392"}, "invalid_phone_format", "to_number"),
        ({**VALID, "dynamic_vars": ["x"]}, "invalid_field", "dynamic_vars"),
    ],
)
def test_sim_field_errors(sim: TestClient, body: dict[str, Any], code: str, field: str) -> None:
    response = sim.post("/v1/calls/outbound", json=body, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "details"}
    assert error["type"] == "invalid_request_error" and error["code"] == code and error["details"]["field"] == field
    assert field in error["message"]
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.REJECTED and result.error_code == code
    assert SIM.stats()["accepted"] == 0


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"agent_id": "nobody"}, "agent_not_found"),
        ({"from_number": "+14155550199"}, "from_number_not_found"),
        ({"from_number": "+14155550101"}, "from_number_not_found"),  # the agent's inbound-only number
        ({"agent_id": "sim-agent-legacy", "from_number": "+14155550100"}, "from_number_not_found"),
        ({"agent_id": "sim-agent-inbound"}, "agent_missing_phone_number"),  # inbound-only does not count
        ({"agent_id": "sim-agent-no-number"}, "agent_missing_phone_number"),
        ({"agent_id": "sim-agent-no-twilio"}, "agent_missing_twilio_credentials"),
    ],
)
def test_sim_agent_and_number_errors(sim: TestClient, changes: dict[str, Any], code: str) -> None:
    response = sim.post("/v1/calls/outbound", json={**VALID, **changes}, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert ADAPTER.parse_response(response).verdict == Verdict.REJECTED


def test_sim_checks_in_the_documented_order(sim: TestClient) -> None:
    """Missing fields before the phone format, the format before the agent, the agent before its number."""
    cases = [
        ({"agent_id": "nobody", "to_number": "0738", "prompt": ""}, "missing_field"),
        ({"agent_id": "nobody", "to_number": "0738", "prompt": "p"}, "invalid_phone_format"),
        ({"agent_id": "nobody", "to_number": "+447386172392", "prompt": "p", "from_number": "+1"}, "agent_not_found"),
        ({**VALID, "agent_id": "sim-agent-no-twilio", "from_number": "+14155550100"}, "from_number_not_found"),
    ]
    for body, code in cases:
        assert sim.post("/v1/calls/outbound", json=body, headers=AUTH).json()["error"]["code"] == code


@pytest.mark.parametrize("to", ["+15005550001", "+15005550002", "+15005550003", "+15005550004"])
def test_sim_outbound_failed(sim: TestClient, to: str) -> None:
    response = sim.post("/v1/calls/outbound", json={**VALID, "to_number": to}, headers=AUTH)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "outbound_failed" and isinstance(error["details"]["twilio_error"]["code"], int)
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.REJECTED and result.error_code == "outbound_failed"
    assert SIM.stats()["accepted"] == 0 and SIM.stats()["by_number"] == {to: 1}


def test_sim_unreadable_body(sim: TestClient) -> None:
    response = sim.post("/v1/calls/outbound", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer sim-key"}, "invalid_api_key"),
        ({"Authorization": "Basic sim-key:sim-secret"}, "invalid_api_key"),
        ({"Authorization": "Bearer sim-key:wrong"}, "invalid_api_key"),
    ],
)
def test_sim_enforces_auth(sim: TestClient, headers: dict[str, str], code: str) -> None:
    for response in (
        sim.post("/v1/calls/outbound", json=VALID, headers=headers),
        sim.get("/v1/calls/CAanything", headers=headers),
    ):
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["type"] == "authentication_error" and error["code"] == code
    assert SIM.stats()["accepted"] == 0


def test_sim_rate_limit_answers_as_documented(sim: TestClient) -> None:
    SIM.configure({"rate_limit_per_minute": 1})
    assert sim.post("/v1/calls/outbound", json=VALID, headers=AUTH).status_code == 201
    response = sim.post("/v1/calls/outbound", json=VALID, headers=AUTH)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-limit"] == "1" and response.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(response.headers["x-ratelimit-reset"]) - time.time() <= 61
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.RETRY_SAFE and result.error_code == "rate_limit_exceeded"
    assert result.retry_after_s is not None and 1 <= result.retry_after_s <= 60
    assert SIM.stats()["by_number"] == {"+447386172392": 2} and SIM.stats()["accepted"] == 1


def test_sim_server_error_is_never_resent(sim: TestClient, sim_account: Account) -> None:
    SIM.configure({"error_5xx_rate": 1.0})
    response = sim.send(ADAPTER.build_request(sim_account, call()))
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert ADAPTER.parse_response(response).verdict == Verdict.UNKNOWN


def wait_until_ended(call_id: str) -> None:
    deadline = time.monotonic() + 5
    while SIM.calls[call_id].ended is None:
        assert time.monotonic() < deadline, "the simulated call never ended"
        time.sleep(0.02)


@pytest.mark.parametrize("outcome", ["completed", "no_answer", "busy", "voicemail", "failed"])
def test_sim_call_lookup_follows_the_call(sim: TestClient, sim_account: Account, outcome: str) -> None:
    SIM.configure({"outcome_mix": {outcome: 1.0}})
    call_id = place(sim, sim_account)
    request = ADAPTER.build_status_request(sim_account, call_id)
    assert request is not None
    during = sim.send(request)
    assert during.status_code == 200 and during.json()["ended_reason"] is None
    event = ADAPTER.parse_status(call_id, during)
    assert event is not None and event.outcome is None
    wait_until_ended(call_id)
    after = sim.send(request)
    assert after.json()["ended_reason"] in EXPECTED_REASONS
    event = ADAPTER.parse_status(call_id, after)
    assert event is not None and event.outcome == outcome and event.ended_at is not None


def test_sim_unknown_call_is_call_not_found(sim: TestClient) -> None:
    response = sim.get("/v1/calls/CAnope", headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["code"] == "call_not_found"
    assert ADAPTER.parse_status("CAnope", response) is None


def test_sim_signs_its_webhooks(sim: TestClient, sim_account: Account, hooks: respx.Router) -> None:
    SIM.configure({"outcome_mix": {"completed": 1.0}})
    call_id = place(sim, sim_account)
    wait_until_ended(call_id)
    deadline = time.monotonic() + 5
    while not hooks.calls:
        assert time.monotonic() < deadline, "the webhook never came"
        time.sleep(0.02)
    [(sent, _)] = hooks.calls
    headers = {k.lower(): v for k, v in sent.headers.items()}
    ADAPTER.verify_webhook(sim_account, headers, sent.content, time.time())
    with pytest.raises(WebhookRefused):  # the same signature on a changed body
        ADAPTER.verify_webhook(sim_account, headers, sent.content.replace(b"agent_hangup", b"voicemail"), time.time())
    with pytest.raises(WebhookRefused):  # replayed ten minutes later
        ADAPTER.verify_webhook(sim_account, headers, sent.content, time.time() + 600)
    payload = json.loads(sent.content)
    assert payload["event"] == "call.completed" and payload["call_id"] == call_id
    assert {"status", "ended_reason", "transcript"} <= set(payload)
    assert "Confirm Ann on Friday." in payload["transcript"]  # dynamic_vars filled into the prompt
    [event] = ADAPTER.parse_webhook(sent.content)
    assert event.outcome == Outcome.COMPLETED and event.provider_call_id == call_id


# End to end: dispatcher -> simulator -> signed webhook -> API -> job -----------------

E2E_NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York


def test_a_job_placed_on_the_simulator_ends_by_its_signed_webhook(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_E2E_NIXFLEX_KEY_ID", "sim-key")
    monkeypatch.setenv("T_E2E_NIXFLEX_KEY_SECRET", "sim-secret")
    with settings.accounts_file.open("a") as accounts_file:
        accounts_file.write(
            '\n[accounts.nx-e2e]\nprovider = "nixflex"\nbase_url = "http://testserver"\n'
            'credentials = { key_id = "T_E2E_NIXFLEX_KEY_ID", key_secret = "T_E2E_NIXFLEX_KEY_SECRET" }\n'
            'webhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET"\n'
            'options = { agent_id = "sim-agent", prompt = "Hello {name}" }\n'
        )
    accounts = load_accounts(settings.accounts_file)
    hook_url = f"{settings.public_url}/webhooks/nx-e2e"
    SIM.reset()
    SIM.config = SimConfig()
    SIM.configure(
        {
            "webhook_secret": "test-webhook-secret",
            "webhook_url": hook_url,
            "outcome_delay_s": 0.1,
            "outcome_mix": {"busy": 1},
        }
    )
    body = CallBody(to_number="+12125551234", account="nx-e2e", timezone="America/New_York", number_of_retries=0)
    job_id = enqueue_call(engine, body, E2E_NOW, settings).job_id
    Scheduler(engine, settings, lambda _: None).tick(E2E_NOW)
    api = TestClient(create_api(settings, engine, accounts))
    try:
        with respx.mock(assert_all_called=False) as mock, TestClient(create_sim()) as sim_client:
            route = mock.post(hook_url).mock(return_value=httpx.Response(200))
            assert Dispatcher(engine, settings, accounts, sim_client).dispatch(job_id, E2E_NOW) == Dispatched(
                Step.ACCEPTED
            )
            deadline = time.monotonic() + 5
            while not route.calls:
                assert time.monotonic() < deadline, "the webhook never came"
                time.sleep(0.02)
            [(sent, _)] = route.calls
            content, headers = sent.content, dict(sent.headers)
            assert SIM.stats()["by_number"] == {"+12125551234": 1}
    finally:
        SIM.reset()
        SIM.config = SimConfig()
    forged = content.replace(b"busy", b"completed")
    assert api.post("/webhooks/nx-e2e", content=forged, headers=headers).status_code == 401
    results = [api.post("/webhooks/nx-e2e", content=content, headers=headers).json()["results"] for _ in range(2)]
    assert results == [["applied"], ["duplicate"]]
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.last_outcome == "busy" and job.state == "exhausted"
