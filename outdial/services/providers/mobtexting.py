"""MOBtexting voice (OBD): ``POST {base}/api/v2/outgoing/send``, form-urlencoded, ``Authorization: Bearer``.

The form carries ``bridge`` (the caller id), ``to`` (the number with its
country code and no ``+``) and ``ivr_id`` (an IVR flow) or ``audio`` (a sound
file id or an http(s) URL). Each of those comes from the per-call option of
that name, else a lead variable of that name, else the account's option; the
most specific one that names an ``ivr_id`` or an ``audio`` decides which is
sent. ``interval`` (MOBtexting's own retries) is never sent: outdial owns
retries, so the provider is only ever asked to call once, now. The flow has
no other use for lead variables, so none are sent.

Answers are ``{status, code?, message, data?}``, and the body's ``status`` can
differ from the HTTP status (an error answered with HTTP 200). A 2xx whose
body says otherwise is classified by the body's status; any other answer by
its HTTP status. A success is ``{status: 200, message: "1 numbers accepted
for delivery.", data: [{id, mobile, charges, ...}]}``: the call id is
``data[0].id``; no entry in ``data`` means nothing was placed.

Outcomes come by a JSON webhook ``{bridge, from, to, source: "OBD", mid, ...,
status}`` authenticated by a shared secret as Bearer (the default check), or
from ``GET .../outgoing/callstatus?id=...``. No document says that the
webhook's ``mid`` is the send's ``data[].id``: an event is matched by ``mid``
when it happens to be a known id, else by the documented ``to`` (the one open
call to that number on the account); failing both, the ``callstatus`` look-up
of the job settles it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from pydantic import Field

from outdial.services.providers.accounts import Account, AccountError
from outdial.services.providers.base import (
    Adapter,
    CallEvent,
    CallOptions,
    CallRequest,
    DialResult,
    Outcome,
    Verdict,
    parse_time,
    safe_json,
)

FORM = "application/x-www-form-urlencoded"

# Call status (Asterisk's dial statuses, as MOBtexting reports them) -> outcome.
# MOBtexting does not detect answering machines: a machine that answers is ANSWER.
STATUS_OUTCOMES: dict[str, Outcome] = {
    "ANSWER": Outcome.COMPLETED,
    "COMPLETED": Outcome.COMPLETED,
    "BUSY": Outcome.BUSY,
    "NOANSWER": Outcome.NO_ANSWER,
    # The call was given up while it rang: nobody picked up.
    "CANCEL": Outcome.NO_ANSWER,
    # The network or the channel could not carry the call: a technical failure.
    "CONGESTION": Outcome.FAILED,
    "CHANUNAVAIL": Outcome.FAILED,
}

_NOT_LETTERS = re.compile(r"[^A-Z]")
_ERROR_WORDS = {"error", "failed", "failure", "fail"}


def normal_status(value: object) -> str:
    """``no-answer``, ``NO ANSWER`` and ``NOANSWER`` are one status."""
    return _NOT_LETTERS.sub("", str(value or "").upper())


def digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def body_status(body: object) -> int | None:
    """The body's own status as a number: 200, "200"; an error word counts as 400."""
    value = body.get("status") if isinstance(body, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value)
        if value.strip().lower() in _ERROR_WORDS:
            return 400
    return None


# What each way of learning the outcome reports about the call, kept on the attempt, under the
# documents' names: the webhook's, and the callstatus look-up's ``data[]`` record.
RESULT_FIELDS = ("duration", "recording_url")
STATUS_RESULT_FIELDS = ("dtmf", "start_at", "end_at")
# Seconds from the look-up's start_at to its end_at, for an answered call: a key of its own, so
# the webhook's own ``duration`` (which the export prefers) is never replaced by it.
DERIVED_DURATION = "derived_duration"


class MOBtextingOptions(CallOptions):
    bridge: str | None = Field(default=None, pattern=r"^\+?\d{6,15}$")
    ivr_id: str | None = Field(default=None, min_length=1, max_length=100)
    audio: str | None = Field(default=None, min_length=1, max_length=2000)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    webhook_id: str | None = Field(default=None, min_length=1, max_length=100)


class MOBtexting(Adapter):
    name = "mobtexting"
    options_model = MOBtextingOptions

    def headers(self, account: Account) -> dict[str, str]:
        return {"Authorization": f"Bearer {account.secret('token')}", "Accept": "application/json"}

    def endpoint(self, account: Account, path: str) -> str:
        version = str(account.options.get("api_version", "v2")).strip("/")
        return account.url(f"/api/{version}/{path}")

    def build_request(self, account: Account, call: CallRequest) -> httpx.Request:
        levels: list[Mapping[str, Any]] = [call.options, call.variables, account.options]
        form: dict[str, str] = {
            "bridge": digits(str(_first(levels, "bridge", account))),
            "to": digits(call.to_number),
        }
        for level in levels:
            if level.get("ivr_id") not in (None, ""):
                form["ivr_id"] = str(level["ivr_id"])
                break
            if level.get("audio") not in (None, ""):
                form["audio"] = str(level["audio"])
                break
        else:
            raise AccountError(f"account {account.name}: needs option 'ivr_id' or 'audio'")
        for optional in ("name", "webhook_id"):
            value = call.options.get(optional, account.options.get(optional))
            if value not in (None, ""):
                form[optional] = str(value)
        return httpx.Request(
            "POST",
            self.endpoint(account, "outgoing/send"),
            headers={**self.headers(account), "Content-Type": FORM},
            content=urlencode(form).encode(),
        )

    def parse_accepted(self, response: httpx.Response) -> str | None:
        body = safe_json(response)
        data = body.get("data") if isinstance(body, dict) else None
        first = data[0] if isinstance(data, list) and data else data
        call_id = first.get("id") if isinstance(first, dict) else None
        return str(call_id) if call_id else None

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        code, message = super().error_details(response)
        body = safe_json(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, dict) and errors:
            # Laravel-style {"message", "errors": {field: [why]}}: the first reason names the field.
            field, why = next(iter(errors.items()))
            message = f"{message} ({field}: {why[0] if isinstance(why, list) and why else why})"[:500]
        return code, message

    def parse_response(self, response: httpx.Response) -> DialResult:
        http = response.status_code
        body = safe_json(response)
        said = body_status(body)
        if 200 <= http < 300 and said is not None and not 200 <= said < 300:
            # HTTP says fine, the body says otherwise: the body knows what happened.
            headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
            shadow = httpx.Response(said, headers=headers, content=response.content)
            result = super().parse_response(shadow)
            assert isinstance(body, dict)
            code = result.error_code if body.get("code") is not None else str(body["status"])
            return dataclasses.replace(result, http_status=http, error_code=code)
        if 200 <= http < 300 and isinstance(body, dict) and body.get("data") == []:
            message = str(body.get("message") or "no number accepted")
            return DialResult(Verdict.REJECTED, None, http, "not_accepted", message[:500])
        return super().parse_response(response)

    # Outcomes: the shared-secret check of the base class stands ------------------------

    def parse_webhook(self, body: bytes, account: Account | None = None) -> list[CallEvent]:
        try:
            payload: Any = json.loads(body)
        except json.JSONDecodeError:
            payload = dict(parse_qsl(body.decode(), keep_blank_values=True)) or None
        if not isinstance(payload, dict):
            raise ValueError("MOBtexting webhook body is not an object")
        call_id = payload.get("mid")
        if not call_id:
            raise ValueError("MOBtexting webhook without mid")
        status = normal_status(payload.get("status"))
        outcome = STATUS_OUTCOMES.get(status)  # a status we do not know is kept, never taken for an outcome
        to = digits(str(payload.get("to") or ""))
        return [
            CallEvent(
                provider_call_id=str(call_id),
                event_key=f"{call_id}:{status or 'UNKNOWN'}",
                raw_status=str(payload.get("status") or ""),
                outcome=outcome,
                ended_at=parse_time(payload.get("end_at"), naive_is_utc=False) if outcome else None,
                to_number=f"+{to}" if to else None,
                data={k: payload[k] for k in RESULT_FIELDS if payload.get(k) not in (None, "")} if outcome else {},
            )
        ]

    def build_status_request(self, account: Account, provider_call_id: str) -> httpx.Request | None:
        return httpx.Request(
            "GET",
            self.endpoint(account, "outgoing/callstatus"),
            params={"id": provider_call_id},
            headers=self.headers(account),
        )

    def parse_status(
        self, provider_call_id: str, response: httpx.Response, account: Account | None = None
    ) -> CallEvent | None:
        body = safe_json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            return None
        said = body_status(body)
        if said is not None and not 200 <= said < 300:
            return None
        data = body.get("data")
        records = [r for r in (data if isinstance(data, list) else [data]) if isinstance(r, dict)]
        record = next((r for r in records if str(r.get("id")) == provider_call_id), None)
        if record is None and len(records) == 1 and not records[0].get("id"):
            record = records[0]  # the one record asked for, without its id repeated
        if record is None:
            return None
        raw = str(record.get("status") or "")
        status = normal_status(raw)
        outcome = STATUS_OUTCOMES.get(status)  # None: queued or ringing, not over
        result: dict[str, Any] = {}
        if outcome:
            result = {k: record[k] for k in STATUS_RESULT_FIELDS if record.get(k) not in (None, "")}
            span = seconds_between(record.get("start_at"), record.get("end_at"))
            # An unanswered call's times span its ringing, not a conversation.
            if span is not None and outcome == Outcome.COMPLETED:
                result[DERIVED_DURATION] = span
        return CallEvent(
            provider_call_id=provider_call_id,
            event_key=f"{provider_call_id}:status:{status or 'UNKNOWN'}",
            raw_status=raw,
            outcome=outcome,
            ended_at=parse_time(record.get("end_at"), naive_is_utc=False) if outcome else None,
            data=result,
        )


def seconds_between(start: object, end: object) -> int | None:
    """Whole seconds from ``start`` to ``end``; None unless both read and end is not before start.

    MOBtexting's times carry no offset (its portal's zone, India time in the documents' examples):
    two such times are in the same zone, whichever it is, so their difference holds without
    knowing it. One time with an offset and one without are not compared.
    """
    begun, ended = parse_time(start), parse_time(end)
    if begun is None or ended is None:
        return None
    if (parse_time(start, naive_is_utc=False) is None) != (parse_time(end, naive_is_utc=False) is None):
        return None
    seconds = (ended - begun).total_seconds()
    return round(seconds) if seconds >= 0 else None


def _first(levels: list[Mapping[str, Any]], key: str, account: Account) -> Any:
    for level in levels:
        if level.get(key) not in (None, ""):
            return level[key]
    raise AccountError(f"account {account.name}: option {key!r} is missing from the accounts file")


ADAPTER = MOBtexting()
