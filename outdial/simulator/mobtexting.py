"""MOBtexting voice (OBD) as its document describes it: ``POST /api/v2/outgoing/send``, call status, webhooks.

Requests are forms (``application/x-www-form-urlencoded``, or multipart);
anything else is 415. Errors use MOBtexting's ``{status, code?, message}``
with the standard HTTP status that the API overview promises, the body's
``status`` repeating it:

- 401 ``unauthenticated``: no or a wrong ``Authorization: Bearer`` token (or ``?access_token=``);
- 415 ``unsupported_media_type``: not a form;
- 422 ``missing_parameter``: ``bridge``, ``to``, or both ``ivr_id`` and ``audio``;
- 422 ``invalid_bridge``, ``invalid_number``, ``invalid_ivr``, ``invalid_audio``,
  ``invalid_interval`` (``interval`` is 5, 15, 30, 45 or 60 minutes; 0, the default, too);
- 429 ``too_many_requests``: the configured rate limit, and 1000 GETs a minute as documented;
- 404 ``not_found``: a call status for an id it never gave.

The demo account: token ``sim-key``, bridge ``911234567890``, IVR flow ``1``,
sound file ``sim-audio`` (any http(s) URL is an audio too). ``to`` may list
several numbers separated by commas; each gets its own ``data`` entry and id
``<uuid>:<n>``; ``callstatus?id=`` takes several ids the same way. Requests
are counted under ``+<to>``, as other providers' are.
MOBtexting does not detect answering machines: a simulated voicemail ends ANSWER.
``to`` must carry its country code (a number that is not possible with its
leading digits read as one is ``invalid_number``). The webhook's ``mid`` is a
message id of its own, not the send's ``data[].id``: no document says they are
equal, so the adapter must not depend on it.
Times are India time without an offset, as ``submitted_at`` in the document.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import phonenumbers
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from outdial.simulator.base import ProviderSim, SimCall, SimConfig, webhook_secret
from outdial.vocab import Outcome

DEMO_TOKEN = "sim-key"
DEMO_BRIDGE = "911234567890"
DEMO_IVR = "1"
DEMO_AUDIO = "sim-audio"
INTERVALS = {"0", "5", "15", "30", "45", "60"}
GET_LIMIT_PER_MINUTE = 1000  # documented for the pull (GET) APIs
MOBILE = re.compile(r"^[1-9]\d{9,14}$")  # country code and number, digits only
FORMS = {"application/x-www-form-urlencoded", "multipart/form-data"}
INDIA = ZoneInfo("Asia/Kolkata")
BASE = "/api/v2/outgoing"

# Simulated outcome -> the documented call statuses it can end with (one is picked per call).
ENDINGS: dict[Outcome, tuple[str, ...]] = {
    Outcome.COMPLETED: ("ANSWER", "COMPLETED"),
    Outcome.VOICEMAIL: ("ANSWER",),
    Outcome.NO_ANSWER: ("NOANSWER", "CANCEL"),
    Outcome.BUSY: ("BUSY",),
    Outcome.FAILED: ("CHANUNAVAIL", "CONGESTION"),
}
ANSWERED = ("ANSWER", "COMPLETED")
PENDING = "QUEUED"

router = APIRouter(tags=["mobtexting"])
get_window: deque[float] = deque()


def error(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": status}
    if code:
        body["code"] = code
    body["message"] = message
    return JSONResponse(body, status_code=status, headers=headers)


def refused(request: Request) -> JSONResponse | None:
    auth = request.headers.get("authorization") or ""
    scheme, _, token = auth.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else request.query_params.get("access_token", "")
    if given != DEMO_TOKEN:
        return error(401, "Unauthenticated.", "unauthenticated")
    return None


def now_india() -> str:
    return datetime.now(INDIA).strftime("%Y-%m-%d %H:%M:%S")


def india_time(moment: datetime | None) -> str | None:
    return moment.astimezone(INDIA).strftime("%Y-%m-%d %H:%M:%S") if moment else None


def validate(form: dict[str, str]) -> JSONResponse | list[str]:
    """The first problem with a send form, or the numbers to call."""
    for name in ("bridge", "to"):
        if not form.get(name, "").strip():
            return error(422, f"The {name} field is required.", "missing_parameter")
    ivr_id, audio = form.get("ivr_id", "").strip(), form.get("audio", "").strip()
    if not ivr_id and not audio:
        return error(422, "The ivr_id field is required when audio is not present.", "missing_parameter")
    if form["bridge"].strip() != DEMO_BRIDGE:
        return error(422, "Invalid bridge number.", "invalid_bridge")
    numbers = [n.strip() for n in form["to"].split(",") if n.strip()]
    bad = next((n for n in numbers if not has_country_code(n)), None if numbers else form["to"])
    if bad is not None:
        return error(422, f"Invalid mobile number {bad}: digits with the country code, without +.", "invalid_number")
    if ivr_id:
        if ivr_id != DEMO_IVR:
            return error(422, "Invalid ivr_id: no such IVR flow in this account.", "invalid_ivr")
    elif audio != DEMO_AUDIO:
        parts = urlsplit(audio)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return error(
                422,
                "Invalid audio: give a sound file id from Reach > Sounds or a URL starting with http or https.",
                "invalid_audio",
            )
    if "interval" in form and form["interval"].strip() not in INTERVALS:
        return error(422, "The selected interval is invalid. Expected 5, 15, 30, 45 or 60.", "invalid_interval")
    return numbers


def has_country_code(number: str) -> bool:
    """Digits that read as a valid number with their leading digits as the country code."""
    if not MOBILE.match(number):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + number))
    except phonenumbers.NumberParseException:
        return False


async def read_form(request: Request) -> dict[str, str] | None:
    """The form's text fields; None when the body is not a form."""
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media not in FORMS:
        return None
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post(f"{BASE}/send")
async def send(request: Request) -> Response:
    form = await read_form(request)
    to = (form or {}).get("to", "").strip()
    counted = f"+{to}" if to.isdigit() else to

    async def handle() -> Response:
        if form is None:
            return error(415, "Content-Type must be application/x-www-form-urlencoded.", "unsupported_media_type")
        checked = validate(form)
        if isinstance(checked, JSONResponse):
            return checked
        batch = str(uuid.uuid4())
        submitted = now_india()
        data = []
        for index, mobile in enumerate(checked, start=1):
            meta = {
                "bridge": form["bridge"].strip(),
                "mobile": mobile,
                "flow_id": form.get("ivr_id", "").strip() or None,
                "name": form.get("name"),
            }
            call = SIMULATOR.accept(f"+{mobile}", meta)
            rekey(call, f"{batch}:{index}")
            data.append(
                {
                    "id": call.call_id,
                    "mobile": mobile,
                    "charges": "0.5000",
                    "customid": "",
                    "customid1": "",
                    "iso_code": None,
                    "submitted_at": submitted,
                }
            )
        return JSONResponse({"status": 200, "message": f"{len(data)} numbers accepted for delivery.", "data": data})

    return await SIMULATOR.admit(counted, handle, refused(request))


def rekey(call: SimCall, call_id: str) -> None:
    """Give a call MOBtexting's id shape (``<uuid>:<position in the request>``)."""
    SIMULATOR.calls.pop(call.call_id, None)
    call.call_id = call_id
    SIMULATOR.calls[call_id] = call


def get_limited() -> JSONResponse | None:
    """1000 GET requests a minute, then 429, as the API overview documents."""
    now = time.monotonic()
    while get_window and now - get_window[0] >= 60:
        get_window.popleft()
    if len(get_window) >= GET_LIMIT_PER_MINUTE:
        return too_many(60 - (now - get_window[0]), GET_LIMIT_PER_MINUTE)
    get_window.append(now)
    return None


@router.get(f"{BASE}/callstatus")
async def call_status(request: Request) -> Response:
    limited = get_limited()
    if limited is not None:
        return limited
    denied = refused(request)
    if denied is not None:
        return denied
    ids = [i.strip() for i in request.query_params.get("id", "").split(",") if i.strip()]
    if not ids:
        return error(422, "The id field is required.", "missing_parameter")
    calls = [SIMULATOR.calls[i] for i in ids if i in SIMULATOR.calls]
    if not calls:
        return error(404, "No call found for the given id.", "not_found")
    return JSONResponse({"status": 200, "message": "Call status.", "data": [status_record(c) for c in calls]})


def final_status(call: SimCall) -> str:
    """The call's status once over, picked once so the look-up and the webhook agree."""
    if "status" not in call.meta:
        call.meta["status"] = SIMULATOR.rng.choice(ENDINGS[Outcome(call.outcome)])
    return str(call.meta["status"])


def status_record(call: SimCall) -> dict[str, Any]:
    ended = call.ended is not None
    answered = ended and final_status(call) in ANSWERED
    return {
        "id": call.call_id,
        "from": call.meta["bridge"],
        "to": call.meta["mobile"],
        "status": final_status(call) if ended else PENDING,
        "start_at": india_time(call.started),
        "end_at": india_time(call.ended),
        "dtmf": "1" if answered else None,
    }


def status_webhook(call: SimCall, config: SimConfig) -> tuple[dict[str, Any], dict[str, str]]:
    status = final_status(call)
    answered = status in ANSWERED
    body = {
        "bridge": call.meta["bridge"],
        "from": call.meta["bridge"],
        "to": call.meta["mobile"],
        "source": "OBD",
        "mid": call.meta.setdefault("mid", uuid.uuid4().hex),
        "flow_id": call.meta["flow_id"],
        "start_at": india_time(call.started),
        "end_at": india_time(call.ended),
        "duration": int(config.call_duration_s) if answered else 0,
        "status": status,
        "recording_url": f"https://recordings.mobtexting.invalid/{call.call_id}.mp3" if answered else None,
    }
    return body, {"Authorization": f"Bearer {webhook_secret(config)}"}


def too_many(retry_after: float, limit: int | None = None) -> JSONResponse:
    seconds = max(1, round(retry_after))
    headers = {"Retry-After": str(seconds), "X-RateLimit-Remaining": "0"}
    if limit:
        headers["X-RateLimit-Limit"] = str(limit)
    return error(429, "Too Many Attempts.", "too_many_requests", headers)


def rate_limited(retry_after: float) -> Response:
    return too_many(retry_after, SIMULATOR.config.rate_limit_per_minute)


def server_error() -> Response:
    return error(500, "Server Error")


SIMULATOR = ProviderSim(
    name="mobtexting",
    router=router,
    webhook=status_webhook,
    default_account="sim-mobtexting",
    demo_credentials={"token": DEMO_TOKEN},
    rate_limited=rate_limited,
    server_error=server_error,
)
