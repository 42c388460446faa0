"""CallKaro: ``POST /call/outbound`` with ``X-API-KEY``; outcomes by the ``call_ended`` webhook.

CallKaro's own retry, window and schedule fields are not sent: outdial owns
timing, so the provider is only ever asked to call now. ``priority`` (its queue
order) is sent when the user gave one.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import Field

from outdial.services.providers.accounts import Account, AccountError
from outdial.services.providers.base import (
    Adapter,
    CallEvent,
    CallOptions,
    CallRequest,
    Outcome,
    json_field,
    json_post,
)
from outdial.vocab import Language, listed

# hangup_reason -> outcome. Not reached: a rejection is the callee declining (busy);
# unavailable and unresponsive are no answer.
HANGUP_OUTCOMES: dict[str, Outcome] = {
    "CLIENT_INITIATED": Outcome.COMPLETED,
    "PARTICIPANT_REMOVED": Outcome.COMPLETED,
    "SESSION_TIMEOUT": Outcome.COMPLETED,
    "VOICEMAIL_DETECTED": Outcome.VOICEMAIL,
    "USER_REJECTED": Outcome.BUSY,
    "USER_UNAVAILABLE": Outcome.NO_ANSWER,
    "USER_UNRESPONSIVE": Outcome.NO_ANSWER,
    "INVALID_PHONE_NUMBER": Outcome.FAILED,
    "OUTSIDE_TRIGGER_WINDOW": Outcome.FAILED,
    "UNKNOWN": Outcome.FAILED,
    "PRE_CALL_FN_FAILED": Outcome.FAILED,
}
CALL_ENDED = "call_ended"
# What the call_ended payload reports about the call, kept on the attempt.
RESULT_FIELDS = ("call_duration", "recording_url", "transcript", "summary")


class CallKaroOptions(CallOptions):
    """CallKaro's per-call fields outdial passes on (its timing fields are outdial's own)."""

    batch_id: str | None = Field(default=None, min_length=1, max_length=200)
    language: Language | None = None


class CallKaro(Adapter):
    name = "callkaro"
    options_model = CallKaroOptions

    def build_request(self, account: Account, call: CallRequest) -> httpx.Request:
        body: dict[str, object] = {
            "to_number": call.to_number,
            "agent_id": str(call.option(account, "agent_id")),
            "metadata": dict(call.variables),
        }
        batch_id = call.options.get("batch_id", account.options.get("batch_id"))
        if batch_id:
            body["batch_id"] = str(batch_id)
        language = call.options.get("language", account.options.get("language"))
        if language is not None:
            if language not in set(Language):
                # Never dropped silently: the call would be made in the agent's default language.
                raise AccountError(
                    f"account {account.name}: option 'language' {language!r} is not one of {listed(Language)}"
                )
            body["language"] = str(language)
        if call.priority is not None:
            body["priority"] = call.priority
        return json_post(account.url("/call/outbound"), {"X-API-KEY": account.secret("api_key")}, body)

    def parse_accepted(self, response: httpx.Response) -> str | None:
        # The OpenAPI document says call_sid; its prose example says call_id.
        return json_field(response, "call_sid", "call_id")

    def parse_webhook(self, body: bytes, account: Account | None = None) -> list[CallEvent]:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("CallKaro webhook body is not a JSON object")
        data = payload.get("data", payload)
        if not isinstance(data, dict):
            raise ValueError("CallKaro webhook without data")
        call_id = data.get("callSid")
        if not call_id:
            raise ValueError("call_ended webhook without data.callSid")
        reason = str(data.get("hangup_reason") or "")
        event = str(payload.get("event") or CALL_ENDED)
        # CallKaro may try a call again itself (try_count): each try is its own event.
        try_count = data.get("try_count")
        # A reason no document names is kept and shown, never taken for an outcome.
        outcome = HANGUP_OUTCOMES.get(reason) if event == CALL_ENDED else None
        return [
            CallEvent(
                provider_call_id=str(call_id),
                event_key=f"{call_id}:{event}:{try_count if try_count is not None else '-'}",
                raw_status=reason or event,
                outcome=outcome,
                ended_at=None,  # the payload names no end time; the time it arrived stands in
                data=_result(data),
            )
        ]


def _result(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in RESULT_FIELDS if data.get(k) is not None}


ADAPTER = CallKaro()
