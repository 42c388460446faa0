"""CallKaro: ``POST /call/outbound`` with ``X-API-KEY``; outcomes by the ``call_ended`` webhook.

CallKaro's own retry, window and schedule fields are not sent: outdial owns
timing, so the provider is only ever asked to call now.
"""

from __future__ import annotations

import json

import httpx

from outdial.services.providers.accounts import Account
from outdial.services.providers.base import Adapter, CallEvent, CallRequest, Outcome, json_field, json_post, parse_time

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

LANGUAGES = frozenset({"hi", "en", "kn", "mr", "ta", "te", "bn", "gu", "ml"})


class CallKaro(Adapter):
    name = "callkaro"

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
        if language in LANGUAGES:
            body["language"] = language
        return json_post(account.url("/call/outbound"), {"X-API-KEY": account.secret("api_key")}, body)

    def parse_accepted(self, response: httpx.Response) -> str | None:
        # The OpenAPI document says call_sid; its prose example says call_id.
        return json_field(response, "call_sid", "call_id")

    def parse_webhook(self, body: bytes) -> list[CallEvent]:
        payload = json.loads(body)
        data = payload.get("data", payload) if isinstance(payload, dict) else {}
        call_id = data.get("callSid") or data.get("call_sid")
        if not call_id:
            raise ValueError("call_ended webhook without data.callSid")
        reason = str(data.get("hangup_reason") or "UNKNOWN")
        event = str(payload.get("event", "call_ended"))
        ended = data.get("ended_at") or data.get("end_time")
        return [
            CallEvent(
                provider_call_id=str(call_id),
                event_key=f"{call_id}:{event}",
                raw_status=reason,
                outcome=HANGUP_OUTCOMES.get(reason, Outcome.FAILED) if event == "call_ended" else None,
                ended_at=parse_time(ended),
            )
        ]


ADAPTER = CallKaro()
