"""CallKaro's API as its document describes it: ``POST /call/outbound`` and the ``call_ended`` webhook."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from outdial.simulator.base import ProviderSim, SimCall, SimConfig, webhook_secret
from outdial.vocab import Language, Outcome, listed

DEMO_KEY = "sim-key"
DEMO_AGENT = "sim-agent"

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
HHMM = re.compile(r"^([0-1]?[0-9]|2[0-3]):[0-5][0-9]$")
JSON_MEDIA = "application/json"
# Simulated outcome -> every documented hangup reason it can end with (one is picked per call).
HANGUP: dict[Outcome, tuple[str, ...]] = {
    Outcome.COMPLETED: ("CLIENT_INITIATED", "PARTICIPANT_REMOVED", "SESSION_TIMEOUT"),
    Outcome.NO_ANSWER: ("USER_UNAVAILABLE", "USER_UNRESPONSIVE"),
    Outcome.BUSY: ("USER_REJECTED",),
    Outcome.VOICEMAIL: ("VOICEMAIL_DETECTED",),
    Outcome.FAILED: ("INVALID_PHONE_NUMBER", "OUTSIDE_TRIGGER_WINDOW", "UNKNOWN", "PRE_CALL_FN_FAILED"),
}

router = APIRouter(tags=["callkaro"])


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status)


def validate(body: Any) -> str | None:
    """The first problem with a create-call body, worded as CallKaro words it; None if valid."""
    if not isinstance(body, dict):
        return "Invalid JSON body"
    for name in ("to_number", "agent_id"):
        if body.get(name) in (None, ""):
            return f"Missing required field: {name}"
    if not isinstance(body["to_number"], str) or not E164.match(body["to_number"]):
        return "Invalid to_number: must be in E.164 format (e.g. +919876543210)"
    if not isinstance(body["agent_id"], str):
        return "Invalid agent_id"
    if "metadata" in body and not isinstance(body["metadata"], dict):
        return "Invalid metadata: must be an object"
    for name in ("min_trigger_time", "max_trigger_time"):
        if name in body and (not isinstance(body[name], str) or not HHMM.match(body[name])):
            return f"Invalid {name}: must be HH:MM"
    for name, lo, hi in (("number_of_retries", 0, 10), ("priority", -100, 100)):
        value = body.get(name)
        if name in body and (isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi):
            return f"Invalid {name}: must be an integer from {lo} to {hi}"
    gaps = body.get("gap_between_retries")
    if "gap_between_retries" in body and not (
        (isinstance(gaps, int) and not isinstance(gaps, bool))
        or (isinstance(gaps, list) and all(isinstance(g, int) and not isinstance(g, bool) for g in gaps))
    ):
        return "Invalid gap_between_retries: must be an integer or a list of integers"
    if "carry_over" in body and not isinstance(body["carry_over"], bool):
        return "Invalid carry_over: must be a boolean"
    if "language" in body and body["language"] not in set(Language):
        return f"Invalid language: must be one of {listed(Language)}"
    if "schedule_at" in body and not is_timestamp(body["schedule_at"]):
        return "Invalid schedule_at: must be an ISO 8601 date-time (YYYY-MM-DDTHH:MM:SS)"
    return None


def is_timestamp(value: object) -> bool:
    """An ISO 8601 date-time (``format: date-time``), not a date alone or free text."""
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def refused(request: Request) -> JSONResponse | None:
    key = request.headers.get("x-api-key")
    if not key:
        return error(403, "Missing X-API-KEY in headers")
    if key != DEMO_KEY:
        return error(403, "Invalid or missing API key")
    return None


@router.post("/call/outbound")
async def create_call(request: Request) -> Response:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        body = None
    to = str(body.get("to_number")) if isinstance(body, dict) and isinstance(body.get("to_number"), str) else ""

    async def handle() -> Response:
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media != JSON_MEDIA:
            return error(400, "Invalid Content-Type: the request body must be application/json")
        problem = validate(body)
        if problem:
            return error(400, problem)
        assert isinstance(body, dict)
        if body["agent_id"] != DEMO_AGENT:
            return error(404, "Agent does not exist")
        meta = {
            "metadata": body.get("metadata", {}),
            "batch_id": body.get("batch_id"),
            "priority": body.get("priority"),
        }
        call = SIMULATOR.accept(to, meta)
        return JSONResponse({"status": "success", "message": "Call initiated successfully", "call_sid": call.call_id})

    return await SIMULATOR.admit(to, handle, refused(request))


def call_ended(call: SimCall, config: SimConfig) -> tuple[dict[str, Any], dict[str, str]]:
    duration = config.call_duration_s if call.outcome in ("completed", "voicemail") else 0
    body = {
        "event": "call_ended",
        "data": {
            "callSid": call.call_id,
            "from": "+918000000000",
            "to": call.to,
            "call_duration": duration,
            "hangup_reason": SIMULATOR.rng.choice(HANGUP[Outcome(call.outcome)]),
            "try_count": 1,
            "call_metadata": call.meta.get("metadata", {}),
            "batchId": call.meta.get("batch_id"),
        },
    }
    return body, {"Authorization": f"Bearer {webhook_secret(config)}"}


SIMULATOR = ProviderSim(
    name="callkaro",
    router=router,
    webhook=call_ended,
    default_account="sim-callkaro",
    demo_credentials={"api_key": DEMO_KEY},
)
