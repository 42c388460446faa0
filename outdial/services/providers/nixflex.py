"""Nixflex: ``POST /v1/calls/outbound`` with ``Authorization: Bearer KEY_ID:KEY_SECRET``.

The call's purpose travels as a required ``prompt`` with ``{var}``
placeholders, filled by Nixflex from ``dynamic_vars`` (the lead's variables).
The prompt comes from the per-call option ``prompt``, else the account's.

Answers:

- ``201 {call_id, status: "initiated", to, from}``: accepted.
- ``400`` with a code (``missing_field``, ``invalid_phone_format``,
  ``from_number_not_found``, ``agent_missing_phone_number``,
  ``agent_missing_twilio_credentials``): rejected. The code is read from the
  flat ``{code, message}`` or the nested ``{error: {type, code, message, details}}``.
- ``429 rate_limit_exceeded`` with ``Retry-After``: safe to send again.
- ``502 outbound_failed``: Twilio refused the dial, so no call exists. It is
  *rejected* with Twilio's error in the message, never re-sent: Nixflex's own
  SDK never re-sends a POST after a 5xx ("a call is never dialed twice"), and
  no call id exists that a look-up could follow.
- Any other 5xx, including 503, is *unknown* for the same SDK rule: the
  dispatcher does not re-send, the job waits for a person or a look-up.

Outcomes come by the signed ``call.completed`` webhook (``X-Nixflex-Signature:
t=<unix>,v1=<hex>``, keyed with the key secret ``KEY_SECRET``, as the document
says: no separate webhook secret) or from ``GET /v1/calls/{call_id}``. The
outcome is read from the documented ``ended_reason`` alone; ``status`` has no
documented values and is only kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from urllib.parse import quote

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
    WebhookRefused,
    json_field,
    json_post,
    safe_json,
    text_values,
)

SIGNATURE_HEADER = "x-nixflex-signature"
SIGNATURE_TOLERANCE_S = 300
OUTBOUND_FAILED = "outbound_failed"

# ended_reason -> outcome: the documented reasons a call ends.
ENDED_REASON_OUTCOMES: dict[str, Outcome] = {
    "agent_hangup": Outcome.COMPLETED,
    "caller_hangup": Outcome.COMPLETED,
    "max_duration": Outcome.COMPLETED,
    # The callee answered and then said nothing: a person was reached, never "no answer".
    "silence_timeout": Outcome.COMPLETED,
    "voicemail": Outcome.VOICEMAIL,
    "error": Outcome.FAILED,
}


class NixflexOptions(CallOptions):
    prompt: str | None = Field(default=None, min_length=1, max_length=20_000)
    from_number: str | None = Field(default=None, pattern=r"^\+[1-9]\d{1,14}$")
    campaign_id: str | None = Field(default=None, min_length=1, max_length=200)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` of a body sent at ``timestamp``: hex HMAC-SHA256 of ``"<t>.<raw body>"``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_signature(header: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>...]`` -> (t, [v1, ...]); ValueError when malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise ValueError(f"signature part without '=': {part!r}")
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                raise ValueError("t must be one Unix time in seconds")
            timestamp = int(value)
        elif key == "v1":
            if not _HEX64.match(value):
                raise ValueError("v1 must be 64 hex digits")
            signatures.append(value.lower())
        # Other schemes (v0, ...) are ignored, as signature headers of this style allow.
    if timestamp is None or not signatures:
        raise ValueError("signature needs t= and v1=")
    return timestamp, signatures


def ended_outcome(ended_reason: str) -> Outcome | None:
    """The outcome of an ended call from its ``ended_reason``; None for a reason no document names."""
    return ENDED_REASON_OUTCOMES.get(ended_reason.lower())


class Nixflex(Adapter):
    name = "nixflex"
    options_model = NixflexOptions

    def headers(self, account: Account) -> dict[str, str]:
        token = f"{account.secret('key_id')}:{account.secret('key_secret')}"
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def build_request(self, account: Account, call: CallRequest) -> httpx.Request:
        prompt = str(call.option(account, "prompt") or "")
        if not prompt.strip():
            # Nixflex answers missing_field: a configuration fault, better named here.
            raise AccountError(f"account {account.name}: option 'prompt' must not be empty")
        body: dict[str, object] = {
            "agent_id": str(call.option(account, "agent_id")),
            "to_number": call.to_number,
            "prompt": prompt,
            "dynamic_vars": text_values(call.variables),
        }
        for optional in ("from_number", "campaign_id"):
            value = call.options.get(optional, account.options.get(optional))
            if value:
                body[optional] = str(value)
        return json_post(account.url("/v1/calls/outbound"), self.headers(account), body)

    def parse_accepted(self, response: httpx.Response) -> str | None:
        return json_field(response, "call_id")

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        """The code and message of the nested ``{error:{type, code, message, details}}`` or flat envelope."""
        body = safe_json(response)
        if not isinstance(body, dict):
            return (None, response.text[:500] or response.reason_phrase)
        error = body["error"] if isinstance(body.get("error"), dict) else body
        code = error.get("code")
        if code is None and isinstance(body.get("error"), str):
            code = body["error"]  # {"error": "missing_field", "message": ...}
        message = str(error.get("message") or code or response.reason_phrase)
        details = error.get("details")
        twilio = details.get("twilio_error") if isinstance(details, dict) else None
        if twilio:
            message = f"{message} (twilio_error: {json.dumps(twilio, default=str)})"
        return (str(code) if code is not None else None, message[:500])

    def parse_response(self, response: httpx.Response) -> DialResult:
        status = response.status_code
        if status < 500:
            return super().parse_response(response)
        code, message = self.error_details(response)
        if code == OUTBOUND_FAILED:
            return DialResult(Verdict.REJECTED, None, status, code, message)
        # Never re-sent after a 5xx, 503 included: the SDK's rule.
        return DialResult(Verdict.UNKNOWN, None, status, code or str(status), message)

    # Outcomes --------------------------------------------------------------------------

    def signing_secret(self, account: Account) -> str | None:
        """The key secret (``KEY_SECRET``): Nixflex signs webhooks with it, and with nothing else."""
        if "key_secret" not in account.credentials:
            return None
        try:
            return account.secret("key_secret")
        except AccountError:
            return None

    def verify_webhook(self, account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
        secret = self.signing_secret(account)
        if not secret:
            raise WebhookRefused(f"account {account.name} has no key_secret to check signatures with")
        header = (headers.get(SIGNATURE_HEADER) or "").strip()
        if not header:
            raise WebhookRefused("missing X-Nixflex-Signature")
        try:
            timestamp, given = parse_signature(header)
        except ValueError as exc:
            raise WebhookRefused(f"malformed X-Nixflex-Signature: {exc}") from None
        if abs(now - timestamp) > SIGNATURE_TOLERANCE_S:
            # Too old is a replay; too far ahead was never sent by Nixflex's clock.
            raise WebhookRefused("X-Nixflex-Signature timestamp is outside the 300 s tolerance")
        expected = sign(secret, timestamp, body).encode()
        if not any(hmac.compare_digest(v.encode(), expected) for v in given):
            raise WebhookRefused("X-Nixflex-Signature does not match the body (HMAC-SHA256 keyed with the key secret)")

    def parse_webhook(self, body: bytes, account: Account | None = None) -> list[CallEvent]:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("Nixflex webhook body is not a JSON object")
        call_id = payload.get("call_id")
        if not call_id:
            raise ValueError("Nixflex webhook without call_id")
        event = str(payload.get("event") or "call.completed")
        status = str(payload.get("status") or "")
        reason = str(payload.get("ended_reason") or "")
        # Only call.completed is documented; a reason no document names is kept, never guessed.
        outcome = ended_outcome(reason) if event == "call.completed" else None
        return [
            CallEvent(
                provider_call_id=str(call_id),
                event_key=f"{call_id}:{event}",
                raw_status=_raw(status, reason),
                outcome=outcome,
                data=_result(payload) if outcome else {},
            )
        ]

    def build_status_request(self, account: Account, provider_call_id: str) -> httpx.Request | None:
        return httpx.Request(
            "GET", account.url(f"/v1/calls/{quote(provider_call_id, safe='')}"), headers=self.headers(account)
        )

    def parse_status(
        self, provider_call_id: str, response: httpx.Response, account: Account | None = None
    ) -> CallEvent | None:
        body = safe_json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            return None  # call_not_found and friends: nothing learnt
        status = str(body.get("status") or "")
        reason = str(body.get("ended_reason") or "")
        if not status and not reason:
            return None
        outcome = ended_outcome(reason) if reason else None  # no ended_reason: not over
        raw = _raw(status, reason)
        return CallEvent(
            provider_call_id=provider_call_id,
            event_key=f"{provider_call_id}:status:{raw}",
            raw_status=raw,
            outcome=outcome,
            data=_result(body) if outcome else {},
        )


def _result(record: Mapping[str, object]) -> dict[str, object]:
    return {"transcript": record["transcript"]} if record.get("transcript") else {}


def _raw(status: str, reason: str) -> str:
    return f"{status}:{reason}" if status and reason else status or reason


ADAPTER = Nixflex()
