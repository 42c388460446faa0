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
t=<unix>,v1=<hex>``) or from ``GET /v1/calls/{call_id}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from outdial.services.providers.accounts import Account, AccountError
from outdial.services.providers.base import (
    Adapter,
    CallEvent,
    CallRequest,
    DialResult,
    Outcome,
    Verdict,
    WebhookRefused,
    json_field,
    json_post,
    parse_time,
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
    # Connected, and nobody ever spoke: nobody was reached, so it is worth another try.
    "silence_timeout": Outcome.NO_ANSWER,
    "voicemail": Outcome.VOICEMAIL,
    "error": Outcome.FAILED,
}

# The call's status (Twilio's call statuses, which Nixflex passes on). Not documented
# as a list: a failure status refines the outcome when it is there; nothing depends
# on it. None: the call is not over.
CALL_STATUS_OUTCOMES: dict[str, Outcome | None] = {
    "initiated": None,
    "queued": None,
    "ringing": None,
    "in-progress": None,
    "no-answer": Outcome.NO_ANSWER,
    "busy": Outcome.BUSY,
    "failed": Outcome.FAILED,
    "canceled": Outcome.NO_ANSWER,
}


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


def ended_outcome(status: str, ended_reason: str) -> Outcome | None:
    """The outcome of a call from its status and ended_reason; None while it is not over."""
    status = status.lower().replace("_", "-")
    by_status = CALL_STATUS_OUTCOMES.get(status)
    if by_status is not None:
        return by_status  # busy / no-answer / failed say more than the reason the line closed
    reason = ENDED_REASON_OUTCOMES.get(ended_reason.lower())
    if reason is not None:
        return reason
    # A call Twilio calls completed connected and ended; other statuses: still ringing or talking.
    return Outcome.COMPLETED if status == "completed" else None


class Nixflex(Adapter):
    name = "nixflex"

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
        """The account's webhook secret; Nixflex signs with the key secret, used when none is set."""
        secret = account.webhook_secret()
        if secret:
            return secret
        if "key_secret" not in account.credentials:
            return None
        try:
            return account.secret("key_secret")
        except AccountError:
            return None

    def verify_webhook(self, account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
        secret = self.signing_secret(account)
        if not secret:
            raise WebhookRefused(f"account {account.name} has no webhook secret configured")
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
            raise WebhookRefused("X-Nixflex-Signature does not match the body")

    def parse_webhook(self, body: bytes) -> list[CallEvent]:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("Nixflex webhook body is not a JSON object")
        # The documented payload is flat; a data envelope is read the same way.
        data = payload["data"] if isinstance(payload.get("data"), dict) else payload
        call_id = data.get("call_id")
        if not call_id:
            raise ValueError("Nixflex webhook without call_id")
        event = str(payload.get("event") or data.get("event") or "call.completed")
        status = str(data.get("status") or "")
        reason = str(data.get("ended_reason") or "")
        if event == "call.completed":
            # The call is over: a reason we do not know is still an ended call.
            outcome: Outcome | None = ended_outcome(status, reason) or Outcome.FAILED
        else:
            outcome = None  # an event we do not know is kept, never taken for an outcome
        return [
            CallEvent(
                provider_call_id=str(call_id),
                event_key=f"{call_id}:{event}",
                raw_status=_raw(status, reason),
                outcome=outcome,
                ended_at=parse_time(data.get("ended_at")) if outcome else None,
            )
        ]

    def build_status_request(self, account: Account, provider_call_id: str) -> httpx.Request | None:
        return httpx.Request(
            "GET", account.url(f"/v1/calls/{quote(provider_call_id, safe='')}"), headers=self.headers(account)
        )

    def parse_status(self, provider_call_id: str, response: httpx.Response) -> CallEvent | None:
        body = safe_json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            return None  # call_not_found and friends: nothing learnt
        record = body["data"] if isinstance(body.get("data"), dict) else body
        status = str(record.get("status") or "")
        reason = str(record.get("ended_reason") or "")
        if not status and not reason:
            return None
        outcome = ended_outcome(status, reason)
        raw = _raw(status, reason)
        return CallEvent(
            provider_call_id=provider_call_id,
            event_key=f"{provider_call_id}:status:{raw}",
            raw_status=raw,
            outcome=outcome,
            ended_at=parse_time(record.get("ended_at")) if outcome else None,
        )


def _raw(status: str, reason: str) -> str:
    return f"{status}:{reason}" if status and reason else status or reason


ADAPTER = Nixflex()
