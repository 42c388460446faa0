"""MOBtexting contract: the adapter's exact form requests and readings (respx), the simulator's answers, webhooks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

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
from outdial.services.providers.mobtexting import STATUS_OUTCOMES, MOBtexting, normal_status
from outdial.services.providers.transport import Timeouts, send
from outdial.settings import Settings
from outdial.simulator import mobtexting as sim_module
from outdial.simulator.app import create_app as create_sim
from outdial.simulator.base import DEMO_WEBHOOK_SECRET, SimConfig
from outdial.store import jobs as job_store

ADAPTER = MOBtexting()
BASE = "https://portal.mobtexting.com"
URL = f"{BASE}/api/v2/outgoing/send"
HOOK_URL = "http://hooks.test/webhooks/mt"
SECRET = "mt-shared-secret"
CALL_ID = "70fa87e0-9df9-4327-bc80-a561c48703d8:1"


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_MOB_TOKEN", "38e896f55670311982434e929559b")
    monkeypatch.setenv("T_MOB_WEBHOOK", SECRET)
    return Account(
        name="mt",
        provider="mobtexting",
        base_url=BASE,
        credentials={"token": "T_MOB_TOKEN"},
        options={"bridge": "918068281234", "ivr_id": "23"},
        webhook_secret_env="T_MOB_WEBHOOK",
    )


def with_options(account: Account, **options: Any) -> Account:
    return Account(**{**account.__dict__, "options": options})


def call(**fields: Any) -> CallRequest:
    return CallRequest(**{"job_id": 7, "attempt": 2, "to_number": "+918867135123", **fields})


def form(request: httpx.Request) -> dict[str, str]:
    parsed = parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values())
    return {k: v[0] for k, v in parsed.items()}


# (a) Requests as built ---------------------------------------------------------------


def test_create_call_request_shape(account: Account) -> None:
    request = ADAPTER.build_request(account, call(variables={"name": "Asha"}, callback_url=HOOK_URL))
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["Authorization"] == "Bearer 38e896f55670311982434e929559b"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"
    # No '+', no interval (outdial owns retries), no variables the flow could not use.
    assert form(request) == {"bridge": "918068281234", "to": "918867135123", "ivr_id": "23"}


def test_audio_instead_of_an_ivr(account: Account) -> None:
    audio = with_options(account, bridge="+918068281234", audio="https://example.test/a.mp3")
    assert form(ADAPTER.build_request(audio, call())) == {
        "bridge": "918068281234",
        "to": "918867135123",
        "audio": "https://example.test/a.mp3",
    }


def test_the_most_specific_level_chooses_ivr_or_audio(account: Account) -> None:
    per_call = form(ADAPTER.build_request(account, call(options={"audio": "39888925-718e"})))
    assert per_call["audio"] == "39888925-718e" and "ivr_id" not in per_call
    per_lead = form(ADAPTER.build_request(account, call(variables={"ivr_id": 24, "audio": "x"})))
    assert per_lead["ivr_id"] == "24" and "audio" not in per_lead
    bridge = form(ADAPTER.build_request(account, call(options={"bridge": "919000000000"})))
    assert bridge["bridge"] == "919000000000"


def test_optional_name_and_webhook_id(account: Account) -> None:
    named = with_options(account, bridge="918068281234", ivr_id="23", name="obd_api_call", webhook_id="5")
    assert form(ADAPTER.build_request(named, call())) == {
        "bridge": "918068281234",
        "to": "918867135123",
        "ivr_id": "23",
        "name": "obd_api_call",
        "webhook_id": "5",
    }


def test_api_version_option(account: Account) -> None:
    v1 = with_options(account, bridge="918068281234", ivr_id="1", api_version="v1")
    assert str(ADAPTER.build_request(v1, call()).url) == f"{BASE}/api/v1/outgoing/send"


@pytest.mark.parametrize("options", [{"bridge": "918068281234"}, {"ivr_id": "1"}])
def test_missing_configuration_is_named(account: Account, options: dict[str, str]) -> None:
    with pytest.raises(AccountError):
        ADAPTER.build_request(with_options(account, **options), call())


# (a) Responses as read ---------------------------------------------------------------

SUCCESS = {
    "status": 200,
    "message": "1 numbers accepted for delivery.",
    "data": [
        {
            "id": CALL_ID,
            "mobile": "918919525224",
            "charges": "0.5000",
            "customid": "",
            "customid1": "",
            "iso_code": None,
            "submitted_at": "2019-08-16 15:09:51",
        }
    ],
}


@pytest.mark.parametrize(
    ("answer", "verdict", "call_id", "http", "code", "message_part"),
    [
        (httpx.Response(200, json=SUCCESS), "accepted", CALL_ID, 200, None, None),
        (httpx.Response(200, json={**SUCCESS, "status": "200"}), "accepted", CALL_ID, 200, None, None),
        # The body's status differs from HTTP's: the body says what happened.
        (
            httpx.Response(200, json={"status": 401, "message": "Unauthenticated."}),
            "rejected",
            None,
            200,
            "401",
            "Unauthenticated",
        ),
        (
            httpx.Response(200, json={"status": 422, "code": "invalid_bridge", "message": "Invalid bridge number."}),
            "rejected",
            None,
            200,
            "invalid_bridge",
            "bridge",
        ),
        (
            httpx.Response(200, json={"status": "ERROR", "message": "Insufficient balance"}),
            "rejected",
            None,
            200,
            "ERROR",
            "balance",
        ),
        (
            httpx.Response(200, json={"status": 429, "message": "Too Many Attempts."}),
            "retry_safe",
            None,
            200,
            "429",
            None,
        ),
        (httpx.Response(200, json={"status": 500, "message": "Server Error"}), "unknown", None, 200, "500", None),
        (
            httpx.Response(200, json={"status": 200, "message": "0 numbers accepted for delivery.", "data": []}),
            "rejected",
            None,
            200,
            "not_accepted",
            "0 numbers",
        ),
        (httpx.Response(200, json={"status": 200, "message": "ok"}), "unknown", None, 200, "no_call_id", None),
        (
            httpx.Response(401, json={"status": 401, "code": "unauthenticated", "message": "Unauthenticated."}),
            "rejected",
            None,
            401,
            "unauthenticated",
            "Unauthenticated",
        ),
        (
            httpx.Response(422, json={"message": "The given data was invalid.", "errors": {"to": ["Invalid to."]}}),
            "rejected",
            None,
            422,
            "422",
            "to: Invalid to.",
        ),
        (httpx.Response(500, json={"status": 200, "message": "?"}), "unknown", None, 500, "500", None),
        (httpx.Response(502, text="Bad Gateway"), "unknown", None, 502, "502", "Bad Gateway"),
        (httpx.Response(503), "retry_safe", None, 503, "503", None),
    ],
)
@respx.mock
def test_answers_are_classified(
    account: Account,
    answer: httpx.Response,
    verdict: str,
    call_id: str | None,
    http: int,
    code: str | None,
    message_part: str | None,
) -> None:
    respx.post(URL).mock(return_value=answer)
    result = send(httpx.Client(), ADAPTER, ADAPTER.build_request(account, call()), Timeouts()).result
    assert (result.verdict, result.provider_call_id, result.error_code, result.http_status) == (
        verdict,
        call_id,
        code,
        http,
    )
    if message_part:
        assert result.message is not None and message_part in result.message


@pytest.mark.parametrize("http", [200, 429])
def test_429_is_retry_safe_after_retry_after(http: int) -> None:
    answer = httpx.Response(
        http,
        json={"status": 429, "code": "too_many_requests", "message": "Too Many Attempts."},
        headers={"Retry-After": "9"},
    )
    result = ADAPTER.parse_response(answer)
    assert (result.verdict, result.error_code, result.retry_after_s) == (Verdict.RETRY_SAFE, "too_many_requests", 9)


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


# Outcome table: one test per row, against expectations written out here -------------

EXPECTED = {
    "ANSWER": "completed",
    "COMPLETED": "completed",
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "no_answer",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
}


def test_every_table_row_has_a_test() -> None:
    assert set(STATUS_OUTCOMES) == set(EXPECTED)


def hook(status: str = "ANSWER", mid: str = CALL_ID, **more: Any) -> bytes:
    payload = {
        "bridge": "918068281234",
        "from": "918068281234",
        "to": "918867135123",
        "source": "OBD",
        "mid": mid,
        "flow_id": "23",
        "start_at": "2019-08-16 15:09:51",
        "end_at": "2019-08-16 15:10:31",
        "duration": 40,
        "status": status,
        "recording_url": None,
        **more,
    }
    return json.dumps(payload).encode()


@pytest.mark.parametrize(("status", "expected"), EXPECTED.items())
def test_status_row(status: str, expected: str) -> None:
    [event] = ADAPTER.parse_webhook(hook(status))
    assert event.outcome == expected and event.raw_status == status and event.provider_call_id == CALL_ID
    looked_up = ADAPTER.parse_status(
        CALL_ID, httpx.Response(200, json={"status": 200, "data": [{"id": CALL_ID, "status": status}]})
    )
    assert looked_up is not None and looked_up.outcome == expected and looked_up.raw_status == status


@pytest.mark.parametrize(
    ("spelling", "status"), [("no-answer", "NOANSWER"), ("No Answer", "NOANSWER"), ("busy", "BUSY")]
)
def test_spellings_of_a_status_are_one(spelling: str, status: str) -> None:
    assert normal_status(spelling) == status
    [event] = ADAPTER.parse_webhook(hook(spelling))
    assert event.outcome == EXPECTED[status] and event.raw_status == spelling


def test_unknown_statuses_are_kept_not_taken_for_outcomes() -> None:
    [event] = ADAPTER.parse_webhook(hook("QUEUED"))
    assert event.outcome is None and event.raw_status == "QUEUED"


def test_event_keys_deduplicate_redeliveries() -> None:
    first = ADAPTER.parse_webhook(hook("BUSY"))[0]
    again = ADAPTER.parse_webhook(hook("BUSY", duration=0))[0]
    other_call = ADAPTER.parse_webhook(hook("BUSY", mid="other:1"))[0]
    other_status = ADAPTER.parse_webhook(hook("ANSWER"))[0]
    assert first.event_key == again.event_key
    assert len({first.event_key, other_call.event_key, other_status.event_key}) == 3


def test_times_without_a_zone_are_not_guessed() -> None:
    [naive] = ADAPTER.parse_webhook(hook())
    assert naive.ended_at is None  # the time of receipt stands in
    [aware] = ADAPTER.parse_webhook(hook(end_at="2019-08-16T15:10:31+05:30"))
    assert aware.ended_at == datetime(2019, 8, 16, 15, 10, 31, tzinfo=timezone(timedelta(hours=5, minutes=30)))


def test_a_form_encoded_webhook_is_read_too() -> None:
    [event] = ADAPTER.parse_webhook(f"mid={CALL_ID}&status=NOANSWER&source=OBD".encode())
    assert event.outcome == Outcome.NO_ANSWER and event.provider_call_id == CALL_ID


@pytest.mark.parametrize("body", [b"[]", b'{"status": "ANSWER"}', b""])
def test_unreadable_webhooks(body: bytes) -> None:
    with pytest.raises(ValueError):
        ADAPTER.parse_webhook(body)


def test_status_request(account: Account) -> None:
    request = ADAPTER.build_status_request(account, CALL_ID)
    assert request is not None and request.method == "GET"
    assert request.url.copy_with(query=None) == httpx.URL(f"{BASE}/api/v2/outgoing/callstatus")
    assert request.url.params["id"] == CALL_ID
    assert request.headers["Authorization"] == "Bearer 38e896f55670311982434e929559b"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, json={"status": 404, "message": "No call found for the given id."}),
        httpx.Response(200, json={"status": 404, "message": "No call found for the given id."}),
        httpx.Response(200, json={"status": 200, "data": []}),
        httpx.Response(200, json={"status": 200, "data": [{"id": "someone-else:1", "status": "ANSWER"}]}),
        httpx.Response(200, text="<html>"),
    ],
)
def test_status_answers_that_teach_nothing(answer: httpx.Response) -> None:
    assert ADAPTER.parse_status(CALL_ID, answer) is None


def test_a_call_not_over_is_an_event_without_an_outcome() -> None:
    answer = httpx.Response(200, json={"status": 200, "data": [{"id": CALL_ID, "status": "QUEUED", "end_at": None}]})
    event = ADAPTER.parse_status(CALL_ID, answer)
    assert event is not None and event.outcome is None and event.raw_status == "QUEUED"


# Webhook security: an optional shared secret as Bearer --------------------------------


def test_shared_secret(account: Account) -> None:
    body = hook()
    ADAPTER.verify_webhook(account, {"authorization": f"Bearer {SECRET}"}, body, time.time())
    ADAPTER.verify_webhook(account, {"x-outdial-token": SECRET}, body, time.time())
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": SECRET}, {"x-outdial-token": ""}):
        with pytest.raises(WebhookRefused):
            ADAPTER.verify_webhook(account, headers, body, time.time())


@given(st.text(min_size=1, max_size=40))
def test_only_the_secret_passes(guess: str) -> None:
    account = Account("mt", "mobtexting", BASE, webhook_secret_env="T_MOB_HYPO")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("T_MOB_HYPO", SECRET)
        if guess.strip() != SECRET:
            with pytest.raises(WebhookRefused):
                ADAPTER.verify_webhook(account, {"authorization": f"Bearer {guess}"}, b"{}", 0)


def test_api_refuses_a_wrong_secret_and_stores_nothing(engine: Engine, settings: Settings, account: Account) -> None:
    client = TestClient(create_api(settings, engine, {"mt": account}))
    body = hook("BUSY")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert client.post("/webhooks/mt", content=body, headers=headers).status_code == 401
    assert client.post("/webhooks/mt?token=wrong", content=body).status_code == 401
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ProviderEvent)).scalar() == 0
    good = {"Authorization": f"Bearer {SECRET}"}
    assert client.post("/webhooks/mt", content=body, headers=good).json()["received"] == 1
    assert client.post(f"/webhooks/mt?token={SECRET}", content=body).json()["results"] == ["duplicate"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ProviderEvent)).scalar() == 1


# (b) Against the simulator -----------------------------------------------------------

SIM = sim_module.SIMULATOR
AUTH = {"Authorization": "Bearer sim-key", "Accept": "application/json"}
SEND = "/api/v2/outgoing/send"
STATUS = "/api/v2/outgoing/callstatus"
VALID = {"bridge": "911234567890", "to": "918867135123", "ivr_id": "1"}


@pytest.fixture
def hooks() -> Iterator[respx.Router]:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(HOOK_URL).mock(return_value=httpx.Response(200))
        yield mock


@pytest.fixture
def sim(hooks: respx.Router) -> Iterator[TestClient]:
    SIM.reset()
    SIM.config = SimConfig()
    SIM.configure({"outcome_delay_s": 0.2, "seed": 1, "webhook_url": HOOK_URL})
    sim_module.get_window.clear()
    with TestClient(create_sim()) as client:
        yield client
    SIM.reset()
    SIM.config = SimConfig()
    sim_module.get_window.clear()


@pytest.fixture
def sim_account(monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("T_SIM_MOB_TOKEN", "sim-key")
    monkeypatch.setenv("T_SIM_WEBHOOK", DEMO_WEBHOOK_SECRET)
    return Account(
        name="sim-mobtexting",
        provider="mobtexting",
        base_url="http://testserver",
        credentials={"token": "T_SIM_MOB_TOKEN"},
        options={"bridge": "911234567890", "ivr_id": "1"},
        webhook_secret_env="T_SIM_WEBHOOK",
    )


def place(client: TestClient, account: Account) -> str:
    response = client.send(ADAPTER.build_request(account, call()))
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.ACCEPTED and result.provider_call_id, response.text
    return result.provider_call_id


def test_sim_accepts_the_adapters_request(sim: TestClient, sim_account: Account) -> None:
    response = sim.send(ADAPTER.build_request(sim_account, call()))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 200 and body["message"] == "1 numbers accepted for delivery."
    [entry] = body["data"]
    assert set(entry) == {"id", "mobile", "charges", "customid", "customid1", "iso_code", "submitted_at"}
    assert entry["mobile"] == "918867135123" and entry["id"].endswith(":1")
    datetime.strptime(entry["submitted_at"], "%Y-%m-%d %H:%M:%S")
    stats = sim.get("/_sim/stats").json()["providers"]["mobtexting"]
    assert stats["by_number"] == {"+918867135123": 1} and stats["accepted_by_number"] == {"+918867135123": 1}


@pytest.mark.parametrize(
    "fields",
    [
        {"bridge": "911234567890", "to": "918867135123", "audio": "sim-audio", "name": "obd_api_call"},
        {"bridge": "911234567890", "to": "918867135123", "ivr_id": "1", "name": "obd_api_call"},
        {"bridge": "911234567890", "to": "918867135123", "audio": "http://youraudiofilelocation.mp3"},
        {"bridge": "911234567890", "to": "918867135123", "audio": "https://cdn.example.test/a.mp3"},
        *({**VALID, "interval": i} for i in ("5", "15", "30", "45", "60", "0")),
        {**VALID, "webhook_id": "12"},
    ],
)
def test_sim_accepts_the_documented_requests(sim: TestClient, fields: dict[str, str]) -> None:
    response = sim.post(SEND, data=fields, headers=AUTH)
    assert response.status_code == 200 and response.json()["status"] == 200, response.text


def test_sim_takes_multipart_forms_too(sim: TestClient) -> None:
    response = sim.post(SEND, data=VALID, files={"unused": ("a.txt", b"x")}, headers=AUTH)
    assert response.status_code == 200, response.text


def test_sim_several_numbers_in_one_request(sim: TestClient) -> None:
    response = sim.post(SEND, data={**VALID, "to": "918867135123,918867135124"}, headers=AUTH)
    body = response.json()
    assert body["message"] == "2 numbers accepted for delivery."
    assert [d["id"].rsplit(":", 1)[1] for d in body["data"]] == ["1", "2"]
    assert SIM.stats()["accepted_by_number"] == {"+918867135123": 1, "+918867135124": 1}


@pytest.mark.parametrize(
    ("fields", "status", "code", "message_part"),
    [
        ({"to": "918867135123", "ivr_id": "1"}, 422, "missing_parameter", "bridge"),
        ({"bridge": "911234567890", "ivr_id": "1"}, 422, "missing_parameter", "to"),
        ({"bridge": "911234567890", "to": "918867135123"}, 422, "missing_parameter", "ivr_id"),
        ({**VALID, "bridge": "919999999999"}, 422, "invalid_bridge", "bridge"),
        ({**VALID, "to": "+918867135123"}, 422, "invalid_number", "without +"),
        ({**VALID, "to": "8867"}, 422, "invalid_number", "8867"),
        ({**VALID, "to": "91886713512a"}, 422, "invalid_number", "mobile"),
        ({**VALID, "ivr_id": "23"}, 422, "invalid_ivr", "ivr_id"),
        ({"bridge": "911234567890", "to": "918867135123", "audio": "=http://x.mp3"}, 422, "invalid_audio", "http"),
        ({"bridge": "911234567890", "to": "918867135123", "audio": "ftp://x.test/a.mp3"}, 422, "invalid_audio", "http"),
        ({**VALID, "interval": "10"}, 422, "invalid_interval", "interval"),
        ({**VALID, "interval": "five"}, 422, "invalid_interval", "interval"),
    ],
)
def test_sim_errors(sim: TestClient, fields: dict[str, str], status: int, code: str, message_part: str) -> None:
    response = sim.post(SEND, data=fields, headers=AUTH)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"status", "code", "message"}
    assert body["status"] == status and body["code"] == code and message_part in body["message"]
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.REJECTED and result.error_code == code
    assert SIM.stats()["accepted"] == 0


def test_sim_wants_a_form(sim: TestClient) -> None:
    response = sim.post(SEND, json=VALID, headers=AUTH)
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"
    assert SIM.stats()["accepted"] == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic sim-key"}])
def test_sim_enforces_auth(sim: TestClient, headers: dict[str, str]) -> None:
    for response in (sim.post(SEND, data=VALID, headers=headers), sim.get(STATUS, params={"id": "x"}, headers=headers)):
        assert response.status_code == 401
        assert response.json() == {"status": 401, "code": "unauthenticated", "message": "Unauthenticated."}
    assert SIM.stats()["accepted"] == 0


def test_sim_takes_the_access_token_parameter(sim: TestClient) -> None:
    assert sim.post(f"{SEND}?access_token=sim-key", data=VALID).status_code == 200


def test_sim_rate_limit(sim: TestClient) -> None:
    SIM.configure({"rate_limit_per_minute": 1})
    assert sim.post(SEND, data=VALID, headers=AUTH).status_code == 200
    response = sim.post(SEND, data=VALID, headers=AUTH)
    assert response.status_code == 429
    assert response.json() == {"status": 429, "code": "too_many_requests", "message": "Too Many Attempts."}
    assert 1 <= int(response.headers["retry-after"]) <= 60 and response.headers["x-ratelimit-limit"] == "1"
    result = ADAPTER.parse_response(response)
    assert result.verdict == Verdict.RETRY_SAFE and result.retry_after_s is not None
    assert SIM.stats()["by_number"] == {"+918867135123": 2} and SIM.stats()["accepted"] == 1


def test_sim_limits_status_look_ups_per_minute(sim: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_module, "GET_LIMIT_PER_MINUTE", 2)
    for _ in range(2):
        assert sim.get(STATUS, params={"id": "x"}, headers=AUTH).status_code == 404
    response = sim.get(STATUS, params={"id": "x"}, headers=AUTH)
    assert response.status_code == 429 and response.headers["x-ratelimit-limit"] == "2"
    assert response.json()["status"] == 429


def test_sim_server_error(sim: TestClient, sim_account: Account) -> None:
    SIM.configure({"error_5xx_rate": 1.0})
    response = sim.send(ADAPTER.build_request(sim_account, call()))
    assert response.status_code == 500 and response.json() == {"status": 500, "message": "Server Error"}
    assert ADAPTER.parse_response(response).verdict == Verdict.UNKNOWN


def wait_until_ended(call_id: str) -> None:
    deadline = time.monotonic() + 5
    while SIM.calls[call_id].ended is None:
        assert time.monotonic() < deadline, "the simulated call never ended"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("outcome", "status", "normalised"),
    [
        ("completed", "ANSWER", "completed"),
        ("voicemail", "ANSWER", "completed"),  # MOBtexting cannot tell a machine from a person
        ("no_answer", "NOANSWER", "no_answer"),
        ("busy", "BUSY", "busy"),
        ("failed", "CHANUNAVAIL", "failed"),
    ],
)
def test_sim_call_status_follows_the_call(
    sim: TestClient, sim_account: Account, outcome: str, status: str, normalised: str
) -> None:
    SIM.configure({"outcome_mix": {outcome: 1.0}})
    call_id = place(sim, sim_account)
    request = ADAPTER.build_status_request(sim_account, call_id)
    assert request is not None
    during = sim.send(request)
    assert during.status_code == 200
    [record] = during.json()["data"]
    assert set(record) == {"id", "from", "to", "status", "start_at", "end_at", "dtmf"}
    assert record["id"] == call_id and record["from"] == "911234567890" and record["to"] == "918867135123"
    event = ADAPTER.parse_status(call_id, during)
    assert event is not None and event.outcome is None
    wait_until_ended(call_id)
    after = sim.send(request)
    assert after.json()["data"][0]["status"] == status and after.json()["data"][0]["end_at"]
    event = ADAPTER.parse_status(call_id, after)
    assert event is not None and event.outcome == normalised and event.raw_status == status


def test_sim_status_of_several_calls(sim: TestClient, sim_account: Account) -> None:
    first, second = place(sim, sim_account), place(sim, sim_account)
    response = sim.get(STATUS, params={"id": f"{first},nope:1,{second}"}, headers=AUTH)
    assert [r["id"] for r in response.json()["data"]] == [first, second]
    event = ADAPTER.parse_status(second, response)
    assert event is not None and event.provider_call_id == second


def test_sim_status_of_an_unknown_call(sim: TestClient) -> None:
    response = sim.get(STATUS, params={"id": "nope:1"}, headers=AUTH)
    assert response.status_code == 404 and response.json()["status"] == 404
    missing = sim.get(STATUS, headers=AUTH)
    assert missing.status_code == 422 and missing.json()["code"] == "missing_parameter"


def test_sim_posts_its_webhook_with_the_shared_secret(
    sim: TestClient, sim_account: Account, hooks: respx.Router
) -> None:
    SIM.configure({"outcome_mix": {"busy": 1.0}})
    call_id = place(sim, sim_account)
    wait_until_ended(call_id)
    deadline = time.monotonic() + 5
    while not hooks.calls:
        assert time.monotonic() < deadline, "the webhook never came"
        time.sleep(0.02)
    [(sent, _)] = hooks.calls
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["authorization"] == f"Bearer {DEMO_WEBHOOK_SECRET}" and headers["content-type"] == "application/json"
    ADAPTER.verify_webhook(sim_account, headers, sent.content, time.time())
    payload = json.loads(sent.content)
    assert {"bridge", "from", "to", "source", "mid", "flow_id", "start_at", "end_at", "duration", "status"} <= set(
        payload
    )
    assert payload["source"] == "OBD" and payload["mid"] == call_id and payload["to"] == "918867135123"
    [event] = ADAPTER.parse_webhook(sent.content)
    assert event.outcome == Outcome.BUSY and event.provider_call_id == call_id


# End to end: dispatcher -> simulator -> webhook -> API -> job ------------------------

E2E_NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # 10:30 in India


def test_a_job_placed_on_the_simulator_ends_by_its_webhook(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_E2E_MOB_TOKEN", "sim-key")
    with settings.accounts_file.open("a") as accounts_file:
        accounts_file.write(
            '\n[accounts.mt-e2e]\nprovider = "mobtexting"\nbase_url = "http://testserver"\n'
            'credentials = { token = "T_E2E_MOB_TOKEN" }\nwebhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET"\n'
            'options = { bridge = "911234567890", ivr_id = "1" }\n'
        )
    accounts = load_accounts(settings.accounts_file)
    hook_url = f"{settings.public_url}/webhooks/mt-e2e"
    SIM.reset()
    SIM.config = SimConfig()
    SIM.configure(
        {
            "webhook_secret": "test-webhook-secret",
            "webhook_url": hook_url,
            "outcome_delay_s": 0.1,
            "outcome_mix": {"completed": 1},
        }
    )
    body = CallBody(to_number="+918867135123", account="mt-e2e", timezone="Asia/Kolkata", number_of_retries=0)
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
            assert SIM.stats()["accepted_by_number"] == {"+918867135123": 1}
    finally:
        SIM.reset()
        SIM.config = SimConfig()
    forged_headers = {**headers, "authorization": "Bearer forged"}
    assert api.post("/webhooks/mt-e2e", content=content, headers=forged_headers).status_code == 401
    results = [api.post("/webhooks/mt-e2e", content=content, headers=headers).json()["results"] for _ in range(2)]
    assert results == [["applied"], ["duplicate"]]
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.last_outcome == "completed" and job.state == "completed"
