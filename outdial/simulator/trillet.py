"""Trillet AI's API as its document describes it: ``POST /v1/api/call``, the call history, and signed webhooks.

Errors use the document's response envelope (``status`` and ``message``),
except a 429, which has the documented ``{"error":{code, message, reset_at}}``.
The entry plan's limits (60 requests a minute, 1 concurrent call) are one
``POST /_sim/config/trillet {"documented_limits": true}`` away; by default the
demo account is unlimited. Only the documented statuses (``completed``,
``failed``, ``ongoing``) and events are sent; a webhook's ``data`` holds the
documented ``callId, agentId, duration, status`` and the call's ``metadata``.
The request body must be ``Content-Type: application/json``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from outdial.simulator.base import ProviderSim, SimCall, SimConfig, default_webhook_url, post_webhook, webhook_secret
from outdial.vocab import Outcome

DEMO_KEY = "sim-key"
DEMO_WORKSPACE = "sim-workspace"
DEMO_AGENT = "sim-agent"
FROM_NUMBER = "+14155550111"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")

DOCUMENTED_RATE_LIMIT = 60  # requests a minute on the entry plan
DOCUMENTED_CONCURRENCY = 1
# Simulated outcome -> (webhook event, documented status). Trillet says nothing finer.
ENDINGS: dict[Outcome, tuple[str, str]] = {
    Outcome.COMPLETED: ("call.completed", "completed"),
    Outcome.VOICEMAIL: ("call.completed", "completed"),
    Outcome.NO_ANSWER: ("call.failed", "failed"),
    Outcome.BUSY: ("call.failed", "failed"),
    Outcome.FAILED: ("call.failed", "failed"),
}

router = APIRouter(tags=["trillet"])
_job_ids = itertools.count(1)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status)


def refused(request: Request) -> JSONResponse | None:
    """Authentication as Trillet checks it: the key, then the workspace it must belong to."""
    key = request.headers.get("x-api-key")
    if not key:
        return error(401, "Missing API key: provide it in the x-api-key header")
    if key != DEMO_KEY:
        return error(401, "Invalid API key")
    workspace = request.headers.get("x-workspace-id")
    if not workspace:
        return error(400, "Missing required header: x-workspace-id")
    if workspace != DEMO_WORKSPACE:
        return error(403, "API key does not have access to this workspace")
    return None


def validate(body: Any) -> str | None:
    """The first problem with a create-call body; None if it is valid."""
    if not isinstance(body, dict):
        return "Invalid JSON body"
    for name in ("to", "call_agent_id"):
        if body.get(name) in (None, ""):
            return f"Missing required field: {name}"
    for name in ("to", "call_agent_id"):
        if not isinstance(body[name], str):
            return f"Invalid {name}: must be a string"
    if not E164.match(body["to"]):
        return "Invalid phone number: to must be in E.164 format (e.g. +14155550123)"
    url = body.get("callback_url")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            return "Invalid callback_url: must be an http(s) URL"
    for name in ("dynamic_variables", "metadata"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            return f"Invalid {name}: must be an object"
    return None


@router.post("/v1/api/call")
async def create_call(request: Request) -> Response:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    to = str(body.get("to")) if isinstance(body, dict) and isinstance(body.get("to"), str) else ""

    async def handle() -> Response:
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            return error(415, "Unsupported Content-Type: the request body must be application/json")
        problem = validate(body)
        if problem:
            return error(400, problem)
        assert isinstance(body, dict)
        agent = body["call_agent_id"]
        if agent != DEMO_AGENT:
            return error(404, f"Agent not found: {agent}")
        room = f"{agent}-{secrets.token_hex(5)}"
        meta = {"agentId": agent, "roomName": room, "metadata": body.get("metadata") or {}}
        if body.get("callback_url"):
            meta["callback_url"] = body["callback_url"]
        call = SIMULATOR.accept(to, meta)
        start_webhook(call)
        return JSONResponse(
            {
                "status": "success",
                "message": f"Outbound call job scheduled for agent {agent} to number {to}",
                "callId": call.call_id,
                "roomName": room,
                "jobId": str(next(_job_ids)),
            }
        )

    return await SIMULATOR.admit(to, handle, refused(request))


@router.get("/v1/api/call-history/{call_id}")
async def call_history(call_id: str, request: Request) -> Response:
    denied = refused(request)
    if denied is not None:
        return denied
    call = SIMULATOR.calls.get(call_id)
    if call is None:
        return error(404, "Call not found")
    ended = call.ended is not None
    _, status = ENDINGS[Outcome(call.outcome)]
    return JSONResponse(
        {
            "callId": call.call_id,
            "agentId": call.meta["agentId"],
            "roomName": call.meta["roomName"],
            "fromPhoneNumber": FROM_NUMBER,
            "toPhoneNumber": call.to,
            "status": status if ended else "ongoing",
            "duration": duration(call, SIMULATOR.config),
            "createdAt": call.started.isoformat(),
            "endedAt": call.ended.isoformat() if call.ended else None,
            "metadata": call.meta["metadata"],
        }
    )


def duration(call: SimCall, config: SimConfig) -> int:
    return int(config.call_duration_s) if call.ended and call.outcome in (Outcome.COMPLETED, Outcome.VOICEMAIL) else 0


def signed(body: dict[str, Any], config: SimConfig) -> tuple[bytes, dict[str, str]]:
    """The exact bytes httpx sends for ``json=body``, and their ``X-Trillet-Signature``."""
    content = httpx.Request("POST", "http://signing.invalid/", json=body).content
    signature = hmac.new(webhook_secret(config).encode(), content, hashlib.sha256).hexdigest()
    return content, {"X-Trillet-Signature": signature}


def event_body(call: SimCall, event: str, status: str, config: SimConfig) -> dict[str, Any]:
    return {
        "event": event,
        "data": {
            "callId": call.call_id,
            "agentId": call.meta["agentId"],
            "duration": duration(call, config),
            "status": status,
            "metadata": call.meta["metadata"],
        },
    }


def ended_webhook(call: SimCall, config: SimConfig) -> tuple[dict[str, Any], dict[str, str]]:
    event, status = ENDINGS[Outcome(call.outcome)]
    body = event_body(call, event, status, config)
    return body, signed(body, config)[1]


def start_webhook(call: SimCall) -> None:
    """``call.started``, to the call's callback URL, shortly after the create-call answer."""
    config = SIMULATOR.config
    body = event_body(call, "call.started", "ongoing", config)
    _, headers = signed(body, config)
    url = call.meta.get("callback_url") or config.webhook_url or default_webhook_url(SIMULATOR.default_account)

    async def post() -> None:
        await asyncio.sleep(0.05)
        await post_webhook(url, body, headers)

    task = asyncio.get_running_loop().create_task(post())
    SIMULATOR.tasks.add(task)
    task.add_done_callback(SIMULATOR.tasks.discard)


def rate_limited(retry_after: float) -> Response:
    seconds = max(1, round(retry_after))
    reset_at = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return JSONResponse(
        {
            "error": {
                "code": "rate_limit_exceeded",
                "message": "Rate limit exceeded. Please retry after the reset time.",
                "reset_at": reset_at,
            }
        },
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


def server_error() -> Response:
    return error(500, "Internal server error")


SIMULATOR = ProviderSim(
    name="trillet",
    router=router,
    webhook=ended_webhook,
    default_account="sim-trillet",
    demo_credentials={"api_key": DEMO_KEY},
    rate_limited=rate_limited,
    server_error=server_error,
    documented_rate_per_minute=DOCUMENTED_RATE_LIMIT,
    documented_max_concurrent=DOCUMENTED_CONCURRENCY,
)
