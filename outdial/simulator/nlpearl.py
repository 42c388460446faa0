"""NLPearl's API as its document describes it: Make Call, the call request and call look-ups, and the webhook.

NLPearl is an ASP.NET service, so its errors are ASP.NET's: 401 with an empty
body and ``WWW-Authenticate: Bearer``, 415 for a body that is not JSON, and
400 ``ValidationProblemDetails`` (``application/problem+json``) for a body the
model binder or ``[Required]`` refuses. Property names match case-insensitively,
as System.Text.Json's web defaults do.

The webhook carries only the documented call fields (``id`` is the *call's*
id; no request id), so outdial must learn the request's call from a
CallRequest look-up. No rate limit is documented.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from outdial.simulator.base import ProviderSim, SimCall, SimConfig, default_webhook_url, post_webhook, webhook_secret
from outdial.vocab import Outcome

DEMO_ACCOUNT = "sim-account"
DEMO_KEY = "sim-key"
DEMO_OUTBOUND = "sim-agent"
OUTBOUND_FROM = "+12025550147"  # the number the demo outbound calls from
MODEL = "NLPearl.Core.Models.OutboundMakeCallRequest"
STRING_MAP = "System.Collections.Generic.Dictionary`2[System.String,System.String]"
JSON_MEDIA = re.compile(r"^(application/json|text/json|application/[^/;\s]+\+json)\s*(;.*)?$", re.IGNORECASE)
# The document gives ``to`` only a minimum length; a number that cannot be dialled is refused too.
PHONE = re.compile(r"^\+?[0-9][0-9 ().\-]{5,22}$")

# Simulated outcome -> the (call status, conversationStatus) pairs it can end with (one per call).
# NeedRetry (10) is not among them: it means NLPearl itself calls again, which it does not simulate.
CALL_STATUSES: dict[Outcome, tuple[tuple[int, int], ...]] = {
    Outcome.COMPLETED: ((4, 100), (4, 110), (4, 130)),
    Outcome.NO_ANSWER: ((7, 150), (4, 150)),
    Outcome.BUSY: ((5, 150),),
    Outcome.VOICEMAIL: ((4, 70),),
    Outcome.FAILED: ((6, 500), (6, 220), (8, 300)),
}
WEBHOOK_FIELDS = ("id", "status", "conversationStatus", "from", "to", "duration")
IN_PROGRESS = (3, 20)

router = APIRouter(tags=["nlpearl"])


def trace_id() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


RFC9110 = "https://tools.ietf.org/html/rfc9110#section-"


def problem(status: int, title: str, kind: str, errors: dict[str, list[str]] | None = None) -> JSONResponse:
    """An ASP.NET ProblemDetails body; ``kind`` is its ``type`` URL (an RFC 9110 section number alone will do)."""
    body: dict[str, Any] = {"type": kind if "://" in kind else RFC9110 + kind, "title": title, "status": status}
    if errors is not None:
        body["errors"] = errors
    body["traceId"] = trace_id()
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def validation_problem(errors: dict[str, list[str]]) -> JSONResponse:
    return problem(400, "One or more validation errors occurred.", "15.5.1", errors)


def not_found() -> JSONResponse:
    return problem(404, "Not Found", "15.5.5")


def unauthorized() -> Response:
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})


def authorized(request: Request) -> bool:
    auth = request.headers.get("authorization") or ""
    scheme, _, token = auth.partition(" ")
    return scheme.lower() == "bearer" and token.strip() == f"{DEMO_ACCOUNT}:{DEMO_KEY}"


def _position(raw: str, needle: str) -> int:
    found = raw.find(needle)
    return max(found, 0)


def _not_converted(raw: str, path: str, target: str, needle: str) -> dict[str, list[str]]:
    where = f"Path: {path} | LineNumber: 0 | BytePositionInLine: {_position(raw, needle)}."
    return {
        path: [f"The JSON value could not be converted to {target}. {where}"],
        "request": ["The request field is required."],
    }


def bind(raw: bytes) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """The request model as ASP.NET binds and validates it: (to and callData, errors)."""
    if not raw.strip():
        return None, {"": ["A non-empty request body is required."], "request": ["The request field is required."]}
    text = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"Path: $ | LineNumber: {exc.lineno - 1} | BytePositionInLine: {exc.colno - 1}."
        return None, {"$": [f"{exc.msg}. {where}"], "request": ["The request field is required."]}
    if not isinstance(body, dict):
        return None, _not_converted(text, "$", MODEL, "")
    model: dict[str, Any] = {"to": None, "callData": None}
    for key, value in body.items():
        name = next((m for m in model if m.lower() == key.lower()), None)
        if name is None:
            where = f"Path: $ | LineNumber: 0 | BytePositionInLine: {_position(text, json.dumps(key))}."
            message = f"The JSON property '{key}' could not be mapped to any .NET member contained in type '{MODEL}'."
            return None, {"$": [f"{message} {where}"], "request": ["The request field is required."]}
        path = f"$.{key}"
        if name == "to" and value is not None and not isinstance(value, str):
            return None, _not_converted(text, path, "System.String", json.dumps(key))
        if name == "callData" and value is not None:
            if not isinstance(value, dict):
                return None, _not_converted(text, path, STRING_MAP, json.dumps(key))
            for var, item in value.items():
                if item is not None and not isinstance(item, str):
                    return None, _not_converted(text, f"{path}.{var}", "System.String", json.dumps(var))
        model[name] = value
    to = model["to"]
    if not isinstance(to, str) or not to.strip():
        return model, {"To": ["The To field is required."]}
    if not PHONE.match(to) or not 7 <= sum(c.isdigit() for c in to) <= 15:
        return model, {"To": ["The To field is not a valid phone number."]}
    return model, {}


@router.post("/v1/Outbound/{outbound_id}/Call")
async def make_call(outbound_id: str, request: Request) -> Response:
    raw = await request.body()
    try:
        peek = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        peek = None
    to = next((str(v) for k, v in peek.items() if k.lower() == "to"), "") if isinstance(peek, dict) else ""

    async def handle() -> Response:
        if not JSON_MEDIA.match(request.headers.get("content-type") or ""):
            return problem(415, "Unsupported Media Type", "15.5.16")
        model, errors = bind(raw)
        if errors or model is None:
            return validation_problem(errors)
        if outbound_id != DEMO_OUTBOUND:
            return validation_problem({"outboundId": [f"Outbound '{outbound_id}' was not found."]})
        call = SIMULATOR.accept(
            to,
            {"callId": uuid.uuid4().hex[:24], "outboundId": outbound_id, "callData": model["callData"] or {}},
        )
        start_webhook(call)
        return JSONResponse({"id": call.call_id, "from": OUTBOUND_FROM, "to": to, "queuePosition": 0})

    return await SIMULATOR.admit(to, handle, None if authorized(request) else unauthorized())


@router.get("/v1/Outbound/CallRequest/{request_id}")
async def get_call_request(request_id: str, request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    call = SIMULATOR.calls.get(request_id)
    if call is None:
        return not_found()
    return JSONResponse(
        {
            "id": call.call_id,
            "status": 10 if call.ended else 2,  # Completed, else OnCall
            "outboundId": call.meta["outboundId"],
            "created": call.started.isoformat(),
            "errors": [],
            "callId": call.meta["callId"],
        }
    )


@router.get("/v2/Call/{call_id}")
async def get_call(call_id: str, request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    call = next((c for c in SIMULATOR.calls.values() if c.meta.get("callId") == call_id), None)
    if call is None:
        return not_found()
    return JSONResponse(call_object(call, SIMULATOR.config))


def call_object(call: SimCall, config: SimConfig) -> dict[str, Any]:
    """A call as ``GET /v2/Call`` and the webhook show it: camelCase, integer statuses."""
    status, conversation = ended_statuses(call) if call.ended else IN_PROGRESS
    talked = call.ended is not None and call.outcome in (Outcome.COMPLETED, Outcome.VOICEMAIL)
    return {
        "id": call.meta["callId"],
        "outboundId": call.meta["outboundId"],
        "startTime": call.started.isoformat(),
        "endTime": call.ended.isoformat() if call.ended else None,
        "status": status,
        "conversationStatus": conversation,
        "from": OUTBOUND_FROM,
        "to": call.to,
        "name": call.meta["callData"].get("name"),
        "duration": int(config.call_duration_s) if talked else 0,
        "recording": f"https://recordings.nlpearl.invalid/{call.meta['callId']}.mp3" if talked else None,
        # The document names transcript but not its shape: a list of turns, empty without a conversation.
        "transcript": transcript(call) if talked else [],
        "summary": "Simulated call." if talked else None,
        "callData": call.meta["callData"],
    }


def transcript(call: SimCall) -> list[dict[str, str]]:
    name = call.meta["callData"].get("name") or "there"
    return [
        {"role": "agent", "content": f"Hello {name}, this is a simulated call."},
        {"role": "client", "content": "Thanks, goodbye."},
    ]


def ended_statuses(call: SimCall) -> tuple[int, int]:
    """The call's two statuses once over, picked once so the look-up and the webhook agree."""
    if "statuses" not in call.meta:
        call.meta["statuses"] = SIMULATOR.rng.choice(CALL_STATUSES[Outcome(call.outcome)])
    status, conversation = call.meta["statuses"]
    return int(status), int(conversation)


def webhook_target(config: SimConfig) -> str:
    return config.webhook_url or default_webhook_url(SIMULATOR.default_account)


def call_webhook(call: SimCall, config: SimConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The documented fields only; NLPearl signs nothing: the shared secret rides as a bearer token."""
    full = call_object(call, config)
    return {k: full[k] for k in WEBHOOK_FIELDS}, {"Authorization": f"Bearer {webhook_secret(config)}"}


def start_webhook(call: SimCall) -> None:
    """The webhook at call start (the one at the end is the base's, once the outcome is reached)."""
    body, headers = call_webhook(call, SIMULATOR.config)
    url = webhook_target(SIMULATOR.config)

    async def post() -> None:
        await asyncio.sleep(0.05)  # after the create-call answer, as a real call starts after it
        await post_webhook(url, body, headers)

    task = asyncio.get_running_loop().create_task(post())
    SIMULATOR.tasks.add(task)
    task.add_done_callback(SIMULATOR.tasks.discard)


def rate_limited(retry_after: float) -> Response:
    seconds = max(1, round(retry_after))
    response = problem(429, "Too Many Requests", "https://tools.ietf.org/html/rfc6585#section-4")
    response.headers["Retry-After"] = str(seconds)
    return response


def server_error() -> Response:
    return problem(500, "An error occurred while processing your request.", "15.6.1")


SIMULATOR = ProviderSim(
    name="nlpearl",
    router=router,
    webhook=call_webhook,
    default_account="sim-nlpearl",
    demo_credentials={"account_id": DEMO_ACCOUNT, "secret_key": DEMO_KEY},
    rate_limited=rate_limited,
    server_error=server_error,
)
