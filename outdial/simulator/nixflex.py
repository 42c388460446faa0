"""Nixflex as its document describes it: ``POST /v1/calls/outbound``, ``GET /v1/calls/{call_id}``, signed webhooks.

Errors use the current envelope ``{"error": {type, code, message, details}}``.
A create-call request is checked in the documented order, stopping at the
first failure, each a 400 with its code: ``missing_field`` (``agent_id``,
``to_number``, ``prompt``; ``prompt`` not blank), ``invalid_phone_format``,
the agent (``agent_not_found``, a code the document does not name), the
dialling number (``from_number_not_found`` / ``agent_missing_phone_number``),
``agent_missing_twilio_credentials``; then the dial, refused by Twilio with
502 ``outbound_failed`` for Twilio's magic test numbers (+15005550001..4).

The demo key ``sim-key:sim-secret`` owns these agents, so every documented
error can be reached:

- ``sim-agent``: outbound ``+14155550100`` (the default), inbound-only ``+14155550101``;
- ``sim-agent-inbound``: only an inbound-only number -> ``agent_missing_phone_number``;
- ``sim-agent-no-number``: no number at all -> ``agent_missing_phone_number``;
- ``sim-agent-legacy``: no number rows, the legacy number ``+14155550104`` on the agent;
- ``sim-agent-no-twilio``: outbound ``+14155550103`` without Twilio credentials.

Nixflex allows 120 writes a minute per key and 10 concurrent calls on the
smallest plan; ``POST /_sim/config/nixflex {"documented_limits": true}`` turns
them on (off by default, for load tests). Webhooks (``call.completed``, flat:
``call_id, status, ended_reason, transcript``) go to the configured
``webhook_url`` (Nixflex takes it from the agent or number, never from the
call), signed with the key secret, as the document says. A request body must be
``Content-Type: application/json``; a call ends with one of the documented
``ended_reason`` values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from outdial.simulator.base import ProviderSim, SimCall, SimConfig
from outdial.vocab import Outcome

DEMO_KEY_ID = "sim-key"
DEMO_KEY_SECRET = "sim-secret"
DEMO_AGENT = "sim-agent"
DEMO_FROM = "+14155550100"
DOCUMENTED_RATE_LIMIT = 120  # writes per minute per key
DOCUMENTED_CONCURRENCY = 10  # concurrent calls on the smallest plan
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
REQUIRED = ("agent_id", "to_number", "prompt")
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")


@dataclass(frozen=True)
class Number:
    e164: str
    outbound: bool = True
    twilio: bool = True


@dataclass(frozen=True)
class Agent:
    numbers: tuple[Number, ...] = ()
    legacy: Number | None = None  # the single number stored on the agent itself


AGENTS: dict[str, Agent] = {
    DEMO_AGENT: Agent((Number(DEMO_FROM), Number("+14155550101", outbound=False))),
    "sim-agent-inbound": Agent((Number("+14155550102", outbound=False),)),
    "sim-agent-no-number": Agent(),
    "sim-agent-legacy": Agent(legacy=Number("+14155550104")),
    "sim-agent-no-twilio": Agent((Number("+14155550103", twilio=False),)),
}

# Twilio's magic test numbers: the dial is refused with Twilio's error.
TWILIO_REFUSALS: dict[str, tuple[int, str]] = {
    "+15005550001": (21217, "Phone number does not appear to be valid"),
    "+15005550002": (21214, "'To' phone number cannot be reached"),
    "+15005550003": (21215, "Account not authorized to call this number (geographic permissions)"),
    "+15005550004": (21216, "Call blocked by Twilio blocklist"),
}

# Simulated outcome -> the documented ended_reasons it can end with (one is picked per call).
# Nixflex documents no reason for a call nobody answered: those end in ``error``.
ENDED_REASONS: dict[Outcome, tuple[str, ...]] = {
    Outcome.COMPLETED: ("agent_hangup", "caller_hangup", "max_duration", "silence_timeout"),
    Outcome.VOICEMAIL: ("voicemail",),
    Outcome.NO_ANSWER: ("error",),
    Outcome.BUSY: ("error",),
    Outcome.FAILED: ("error",),
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "telephony_error",
}

router = APIRouter(tags=["nixflex"])


def error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": ERROR_TYPES[status], "code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def refused(request: Request) -> JSONResponse | None:
    auth = request.headers.get("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if not auth:
        return error(401, "missing_api_key", "Missing Authorization header: use Bearer KEY_ID:KEY_SECRET")
    if scheme.lower() != "bearer" or ":" not in token:
        return error(401, "invalid_api_key", "Malformed Authorization header: use Bearer KEY_ID:KEY_SECRET")
    if token.strip() != f"{DEMO_KEY_ID}:{DEMO_KEY_SECRET}":
        return error(401, "invalid_api_key", "Invalid API key")
    return None


def missing(body: dict[str, Any]) -> JSONResponse | None:
    for name in REQUIRED:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            hint = " (outbound calls take to_number, not to)" if name == "to_number" and "to" in body else ""
            what = "is required and must not be blank" if name == "prompt" else "is required"
            return error(400, "missing_field", f"{name} {what}{hint}", {"field": name})
    return None


def dialling_number(agent: Agent, from_number: object) -> Number | JSONResponse:
    """The number to dial from, chosen as the document says, or the error that says why there is none."""
    outbound = [n for n in agent.numbers if n.outbound]
    if from_number is not None:
        legacy = [agent.legacy] if agent.legacy and not agent.numbers else []
        for number in outbound + legacy:
            if number.e164 == from_number:
                return number
        return error(
            400,
            "from_number_not_found",
            f"from_number {from_number} is not an outbound-enabled number on this agent",
            {"from_number": from_number},
        )
    if outbound:
        return outbound[0]
    if not agent.numbers and agent.legacy is not None:
        return agent.legacy
    return error(400, "agent_missing_phone_number", "The agent has no outbound-enabled phone number assigned")


def validate(body: Any) -> JSONResponse | tuple[str, Number]:
    """The documented checks in order: the first failure, or (agent id, number to dial from)."""
    if not isinstance(body, dict):
        return error(400, "invalid_json", "The request body must be a JSON object")
    problem = missing(body)
    if problem is not None:
        return problem
    if not E164.match(body["to_number"]):
        return error(
            400,
            "invalid_phone_format",
            f"to_number must be in E.164 format (e.g. +447386172392), got {body['to_number']!r}",
            {"field": "to_number"},
        )
    if body.get("dynamic_vars") is not None and not isinstance(body["dynamic_vars"], dict):
        return error(400, "invalid_field", "dynamic_vars must be an object", {"field": "dynamic_vars"})
    for name in ("from_number", "campaign_id"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return error(400, "invalid_field", f"{name} must be a string", {"field": name})
    agent = AGENTS.get(body["agent_id"])
    if agent is None:
        return error(400, "agent_not_found", "Agent not found for this API key", {"agent_id": body["agent_id"]})
    number = dialling_number(agent, body.get("from_number"))
    if isinstance(number, JSONResponse):
        return number
    if not number.twilio:
        return error(
            400,
            "agent_missing_twilio_credentials",
            f"The number {number.e164} has no Twilio credentials stored",
            {"from_number": number.e164},
        )
    return body["agent_id"], number


def render(prompt: str, variables: dict[str, Any]) -> str:
    """``{var}`` replaced from dynamic_vars; a name not there stays as it is."""
    return PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), prompt)


@router.post("/v1/calls/outbound")
async def create_call(request: Request) -> Response:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    to = body["to_number"] if isinstance(body, dict) and isinstance(body.get("to_number"), str) else ""

    async def handle() -> Response:
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            return error(400, "invalid_content_type", "The request body must be Content-Type: application/json")
        checked = validate(body)
        if isinstance(checked, JSONResponse):
            return checked
        assert isinstance(body, dict)
        agent_id, number = checked
        if to in TWILIO_REFUSALS:
            code, message = TWILIO_REFUSALS[to]
            twilio_error = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
            return error(502, "outbound_failed", "Twilio rejected the dial", {"twilio_error": twilio_error})
        meta = {
            "agent_id": agent_id,
            "from": number.e164,
            "campaign_id": body.get("campaign_id"),
            "prompt": render(body["prompt"], body.get("dynamic_vars") or {}),
        }
        call = SIMULATOR.accept(to, meta)
        rekey(call, "CA" + uuid.uuid4().hex)
        return JSONResponse(
            {"call_id": call.call_id, "status": "initiated", "to": to, "from": number.e164}, status_code=201
        )

    return await SIMULATOR.admit(to, handle, refused(request))


def rekey(call: SimCall, call_id: str) -> None:
    """Give a call Nixflex's id shape (Twilio's ``CA`` + 32 hex)."""
    SIMULATOR.calls.pop(call.call_id, None)
    call.call_id = call_id
    SIMULATOR.calls[call_id] = call


def record(call: SimCall, config: SimConfig) -> dict[str, Any]:
    """The call as ``GET /v1/calls/{call_id}`` and the webhook show it."""
    ended = call.ended is not None
    status, reason = ("completed", ended_reason(call)) if ended else ("in-progress", None)
    talked = ended and call.outcome in (Outcome.COMPLETED, Outcome.VOICEMAIL)
    return {
        "call_id": call.call_id,
        "agent_id": call.meta["agent_id"],
        "direction": "outbound",
        "status": status,
        "ended_reason": reason,
        "to": call.to,
        "from": call.meta["from"],
        "campaign_id": call.meta.get("campaign_id"),
        "started_at": call.started.isoformat().replace("+00:00", "Z"),
        "ended_at": call.ended.isoformat().replace("+00:00", "Z") if call.ended else None,
        "duration_seconds": int(config.call_duration_s) if talked else 0,
        "transcript": transcript(call) if ended else None,
    }


def ended_reason(call: SimCall) -> str:
    """The call's ended_reason, picked once so the look-up and the webhook agree."""
    if "ended_reason" not in call.meta:
        call.meta["ended_reason"] = SIMULATOR.rng.choice(ENDED_REASONS[Outcome(call.outcome)])
    return str(call.meta["ended_reason"])


def transcript(call: SimCall) -> str:
    if call.outcome == "completed":
        return f"Agent: {call.meta['prompt']}\nUser: Yes, that works for me, thank you."
    if call.outcome == "voicemail":
        return "Agent: [voicemail detected, call ended]"
    return ""


@router.get("/v1/calls/{call_id}")
async def get_call(call_id: str, request: Request) -> Response:
    denied = refused(request)
    if denied is not None:
        return denied
    call = SIMULATOR.calls.get(call_id)
    if call is None:
        return error(404, "call_not_found", f"No call with id {call_id}", {"call_id": call_id})
    return JSONResponse(record(call, SIMULATOR.config))


def signed(body: dict[str, Any]) -> dict[str, str]:
    """The ``X-Nixflex-Signature`` of the exact bytes httpx sends for ``json=body``, signed now
    with the key secret (``KEY_SECRET``), as Nixflex signs."""
    content = httpx.Request("POST", "http://signing.invalid/", json=body).content
    timestamp = int(time.time())
    digest = hmac.new(DEMO_KEY_SECRET.encode(), f"{timestamp}.".encode() + content, hashlib.sha256)
    return {"X-Nixflex-Signature": f"t={timestamp},v1={digest.hexdigest()}"}


def call_completed(call: SimCall, config: SimConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The documented flat payload, and only its fields."""
    full = record(call, config)
    body = {"event": "call.completed", **{k: full[k] for k in ("call_id", "status", "ended_reason", "transcript")}}
    return body, signed(body)


def rate_limited(retry_after: float) -> Response:
    seconds = max(1, round(retry_after))
    limit = SIMULATOR.config.rate_limit_per_minute or DOCUMENTED_RATE_LIMIT
    return error(
        429,
        "rate_limit_exceeded",
        f"Rate limit exceeded: {limit} requests per minute per API key. Retry after {seconds} s.",
        {"retry_after": seconds},
        headers={
            "Retry-After": str(seconds),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time()) + seconds),
        },
    )


def server_error() -> Response:
    return error(500, "internal_error", "Internal server error")


SIMULATOR = ProviderSim(
    name="nixflex",
    router=router,
    webhook=call_completed,
    default_account="sim-nixflex",
    demo_credentials={"key_id": DEMO_KEY_ID, "key_secret": DEMO_KEY_SECRET},
    rate_limited=rate_limited,
    server_error=server_error,
    documented_rate_per_minute=DOCUMENTED_RATE_LIMIT,
    documented_max_concurrent=DOCUMENTED_CONCURRENCY,
)
