"""Trillet AI: ``POST /v1/api/call`` with ``x-api-key`` and ``x-workspace-id``.

Outcomes come by signed webhook (``X-Trillet-Signature``) to the
``callback_url`` sent with each call, or from ``GET /v1/api/call-history/{callId}``.
Trillet documents three events (``call.started``, ``call.completed``,
``call.failed``) and three statuses (``completed``, ``failed``, ``ongoing``) and
nothing finer, so nothing finer is read: a failed call is ``failed``.

The signature's encoding is not documented; outdial assumes the hex HMAC-SHA256
of the raw body keyed with the whole ``whsec_`` secret (an optional ``sha256=``
prefix is allowed), and says so when a verification fails.

``metadata`` is passed through to the webhook, so each call carries its job and
attempt there: a webhook whose call id outdial never learnt (the create-call
answer was lost) is still matched to its job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from urllib.parse import quote

import httpx
from pydantic import Field

from outdial.services.providers.accounts import Account
from outdial.services.providers.base import (
    Adapter,
    CallEvent,
    CallOptions,
    CallRequest,
    Outcome,
    WebhookRefused,
    json_field,
    json_post,
    parse_time,
    safe_json,
    text_values,
)

SIGNATURE_HEADER = "x-trillet-signature"

# Webhook event -> outcome; None: the call is not over.
EVENT_OUTCOMES: dict[str, Outcome | None] = {
    "call.started": None,
    "call.completed": Outcome.COMPLETED,
    "call.failed": Outcome.FAILED,
}

# Call-history status -> outcome.
HISTORY_OUTCOMES: dict[str, Outcome | None] = {
    "ongoing": None,
    "completed": Outcome.COMPLETED,
    "failed": Outcome.FAILED,
}

SCHEME = "hex HMAC-SHA256 of the raw body, keyed with the whole whsec_ secret"
JOB_KEY, ATTEMPT_KEY = "outdial_job_id", "outdial_attempt"


class TrilletOptions(CallOptions):
    workspace_id: str | None = Field(default=None, min_length=1, max_length=200)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Trillet-Signature`` of a body: hex HMAC-SHA256 keyed with the whole ``whsec_`` secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Trillet(Adapter):
    name = "trillet"
    options_model = TrilletOptions

    def headers(self, account: Account, call: CallRequest | None = None) -> dict[str, str]:
        workspace = call.option(account, "workspace_id") if call else account.option("workspace_id")
        return {
            "x-api-key": account.secret("api_key"),
            "x-workspace-id": str(workspace),
            "Accept": "application/json",
        }

    def build_request(self, account: Account, call: CallRequest) -> httpx.Request:
        body: dict[str, object] = {
            "to": call.to_number,
            "call_agent_id": str(call.option(account, "agent_id")),
            "dynamic_variables": text_values(call.variables),
            # Passed through to the webhook: ties an event to its job even without our call id.
            "metadata": {JOB_KEY: str(call.job_id), ATTEMPT_KEY: str(call.attempt)},
        }
        if call.callback_url:
            body["callback_url"] = call.callback_url
        return json_post(account.url("/v1/api/call"), self.headers(account, call), body)

    def parse_accepted(self, response: httpx.Response) -> str | None:
        body = safe_json(response)
        if not isinstance(body, dict) or body.get("status", "success") != "success":
            return None
        return json_field(response, "callId", "call_id")

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        """``{"error":{"code","message"}}`` (rate limits), ``{"status":"error","message"}``, or text."""
        body = safe_json(response)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            code = error.get("code")
            message = error.get("message") or code or response.reason_phrase
            return (str(code) if code is not None else None, str(message)[:500])
        return super().error_details(response)

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds until ``error.reset_at`` (ISO 8601 or Unix time), else ``Retry-After``."""
        body = safe_json(response)
        error = body.get("error") if isinstance(body, dict) else None
        reset = _reset_time(error.get("reset_at")) if isinstance(error, dict) else None
        if reset is not None:
            return max(0.0, reset - time.time())
        return super().retry_after(response)

    # Outcomes --------------------------------------------------------------------------

    def verify_webhook(self, account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
        secret = account.webhook_secret()
        if not secret:
            raise WebhookRefused(f"account {account.name} has no webhook secret configured")
        given = (headers.get(SIGNATURE_HEADER) or "").strip()
        if given.lower().startswith("sha256="):
            given = given[7:]
        if not given:
            raise WebhookRefused("missing X-Trillet-Signature")
        if not hmac.compare_digest(given.lower().encode(), sign(secret, body).encode()):
            raise WebhookRefused(f"X-Trillet-Signature does not match the body (scheme tried: {SCHEME})")

    def parse_webhook(self, body: bytes, account: Account | None = None) -> list[CallEvent]:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("Trillet webhook body is not a JSON object")
        event = str(payload.get("event") or "")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise ValueError("Trillet webhook without data")
        call_id = data.get("callId")
        if not call_id:
            raise ValueError("Trillet webhook without data.callId")
        status = str(data.get("status") or "")
        # An event we do not know is kept, never taken for an outcome.
        outcome = EVENT_OUTCOMES.get(event)
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else payload.get("metadata")
        return [
            CallEvent(
                provider_call_id=str(call_id),
                event_key=f"{call_id}:{event}",
                raw_status=f"{event}:{status}" if status else event,
                outcome=outcome,
                job_ref=_job_ref(metadata),
                data={"duration": data["duration"]} if outcome and data.get("duration") is not None else {},
            )
        ]

    def build_status_request(self, account: Account, provider_call_id: str) -> httpx.Request | None:
        return httpx.Request(
            "GET",
            account.url(f"/v1/api/call-history/{quote(provider_call_id, safe='')}"),
            headers=self.headers(account),
        )

    def parse_status(
        self, provider_call_id: str, response: httpx.Response, account: Account | None = None
    ) -> CallEvent | None:
        body = safe_json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            return None
        record = body.get("data") if isinstance(body.get("data"), dict) else body
        assert isinstance(record, dict)
        status = str(record.get("status") or "").lower()
        if status not in HISTORY_OUTCOMES:
            return None
        outcome = HISTORY_OUTCOMES[status]
        return CallEvent(
            provider_call_id=provider_call_id,
            event_key=f"{provider_call_id}:history:{status}",
            raw_status=status,
            outcome=outcome,
        )


def _job_ref(metadata: object) -> tuple[int, int] | None:
    """(job id, attempt) from the metadata outdial sent, None when it is not there or not ours."""
    if not isinstance(metadata, dict):
        return None
    job, attempt = str(metadata.get(JOB_KEY) or ""), str(metadata.get(ATTEMPT_KEY) or "")
    return (int(job), int(attempt)) if job.isdigit() and attempt.isdigit() else None


def _reset_time(value: object) -> float | None:
    """A Unix time from ISO 8601 text or a number (seconds, or milliseconds when that large)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 10**11 else float(value)
    if isinstance(value, str):
        try:
            return _reset_time(float(value))
        except ValueError:
            parsed = parse_time(value)
            return parsed.timestamp() if parsed else None
    return None


ADAPTER = Trillet()
