"""NLPearl: ``POST /v1/Outbound/{outboundId}/Call`` with ``Bearer <AccountId>:<SecretKey>``.

The create call returns a *call request* id, not a call id; outdial keeps the
request id as the provider call id. The request, once dialled, names its call
(``callId``), whose two status fields (``status`` and ``conversationStatus``)
say how it went. Outcomes come by webhook (camelCase, unsigned: a shared
secret guards it) or by looking the request, then the call, up.

The documented webhook names only the *call* (``id``), never the request: it
is matched by the call id that a CallRequest look-up taught (``call_ref``).
The poller looks NLPearl requests up promptly until their call id is known.

``conversationStatus`` 10 NeedRetry means NLPearl itself calls again: the call
is not over for outdial, unless the account says its NLPearl campaign has
retries off (option ``campaign_retries_off = true``); then it is no answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
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
    json_field,
    json_post,
    safe_json,
    text_values,
)

# Call request status (GET /v1/Outbound/CallRequest/{id}). None: not over yet.
# Completed says only that the request was carried out: how the call went is
# the call's to tell, so it has no outcome of its own here.
REQUEST_STATUS_NAMES: dict[int, str] = {
    1: "InCallQueue",
    2: "OnCall",
    10: "Completed",
    20: "BlackListed",
    100: "Error",
}
REQUEST_OUTCOMES: dict[int, Outcome | None] = {
    1: None,
    2: None,
    10: None,
    20: Outcome.FAILED,  # the number is on the account's blacklist: never dialled
    100: Outcome.FAILED,
}

# Call status (GET /v2/Call/{id}, webhook ``status``).
CALL_STATUS_NAMES: dict[int, str] = {
    3: "InProgress",
    4: "Completed",
    5: "Busy",
    6: "Failed",
    7: "NoAnswer",
    8: "Canceled",
}
CALL_OUTCOMES: dict[int, Outcome | None] = {
    3: None,
    4: Outcome.COMPLETED,
    5: Outcome.BUSY,
    6: Outcome.FAILED,
    7: Outcome.NO_ANSWER,
    8: Outcome.FAILED,
}

# conversationStatus: what became of the conversation. It refines a completed
# call (a voicemail left is a completed line, not a conversation) and stands in
# when the call status is missing.
CONVERSATION_STATUS_NAMES: dict[int, str] = {
    10: "NeedRetry",
    20: "InCallQueue",
    70: "VoiceMailLeft",
    100: "Success",
    110: "NotSuccessful",
    130: "Completed",
    150: "Unreachable",
    220: "Blacklisted",
    300: "QueueAbandon",
    500: "Error",
}
CONVERSATION_OUTCOMES: dict[int, Outcome | None] = {
    10: None,  # NeedRetry: NLPearl itself calls again (see call_outcome)
    20: None,
    70: Outcome.VOICEMAIL,
    100: Outcome.COMPLETED,
    110: Outcome.COMPLETED,  # reached, the conversation just did not reach its goal
    130: Outcome.COMPLETED,
    150: Outcome.NO_ANSWER,
    220: Outcome.FAILED,
    300: Outcome.FAILED,
    500: Outcome.FAILED,
}


NEED_RETRY = 10


def call_outcome(status: int | None, conversation_status: int | None, provider_retries: bool = True) -> Outcome | None:
    """The outcome of a call from its two status fields; None while it is not over.

    ``provider_retries``: NLPearl's campaign calls a NeedRetry again itself, so outdial
    must not retry on top of it; only with its retries off is NeedRetry a no answer.
    """
    if status == 3:
        return None
    if conversation_status == NEED_RETRY:
        return None if provider_retries else Outcome.NO_ANSWER
    if conversation_status == 70 and status in (None, 4):
        return Outcome.VOICEMAIL
    if status in CALL_OUTCOMES:
        if status == 4 and conversation_status in CONVERSATION_OUTCOMES:
            # Completed at the line; the conversation may say nobody real answered.
            return CONVERSATION_OUTCOMES[conversation_status] or Outcome.COMPLETED
        return CALL_OUTCOMES[status]
    if conversation_status in CONVERSATION_OUTCOMES:
        return CONVERSATION_OUTCOMES[conversation_status]
    # A status we do not know: report it, but do not guess that the call is over.
    return None


def raw_call_status(status: int | None, conversation_status: int | None) -> str:
    def name(value: int | None, names: Mapping[int, str]) -> str:
        return "-" if value is None else f"{value}:{names.get(value, 'Unknown')}"

    return f"{name(status, CALL_STATUS_NAMES)}/{name(conversation_status, CONVERSATION_STATUS_NAMES)}"


# What a call object reports about the call, kept on the attempt.
RESULT_FIELDS = ("duration", "recording", "transcript", "summary")
RETRIES_OFF_OPTION = "campaign_retries_off"


class NLPearlOptions(CallOptions):
    """``outbound_id`` (or the generic ``agent_id``) names the NLPearl outbound campaign."""

    outbound_id: str | None = Field(default=None, min_length=1, max_length=200)
    campaign_retries_off: bool | None = None


def provider_retries(account: Account | None) -> bool:
    """Whether NLPearl's own campaign retries NeedRetry calls (the default, as NLPearl's is)."""
    return not (account is not None and account.options.get(RETRIES_OFF_OPTION) is True)


class NLPearl(Adapter):
    name = "nlpearl"
    options_model = NLPearlOptions
    learns_call_ref = True
    # The webhook documents only ``duration`` of RESULT_FIELDS; ``GET /v2/Call`` has them all.
    lookup_result_fields = ("recording", "transcript", "summary")

    def outbound_id(self, account: Account, call: CallRequest) -> str:
        # The generic per-call agent_id names NLPearl's outbound campaign too.
        for key in ("outbound_id", "agent_id"):
            if call.options.get(key):
                return str(call.options[key])
        return str(account.option("outbound_id"))

    def headers(self, account: Account) -> dict[str, str]:
        token = f"{account.secret('account_id')}:{account.secret('secret_key')}"
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def build_request(self, account: Account, call: CallRequest) -> httpx.Request:
        body: dict[str, object] = {"to": call.to_number}
        data = text_values(call.variables)
        if data:
            body["callData"] = data
        path = f"/v1/Outbound/{quote(self.outbound_id(account, call), safe='')}/Call"
        return json_post(account.url(path), self.headers(account), body)

    def parse_accepted(self, response: httpx.Response) -> str | None:
        return json_field(response, "id")

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        """ASP.NET (Validation)ProblemDetails: ``title`` plus per-field ``errors``."""
        body = safe_json(response)
        if not isinstance(body, dict) or not ({"title", "errors"} & body.keys()):
            return super().error_details(response)
        parts = [str(body.get("title") or body.get("detail") or response.reason_phrase)]
        errors = body.get("errors")
        if isinstance(errors, dict):
            for field_name, messages in errors.items():
                texts = messages if isinstance(messages, list) else [messages]
                parts.append(f"{field_name}: {' '.join(str(m) for m in texts)}")
        elif body.get("detail"):
            parts.append(str(body["detail"]))
        code = "validation_error" if isinstance(errors, dict) and errors else None
        return (code, "; ".join(parts)[:500])

    # Outcomes --------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, account: Account | None = None) -> list[CallEvent]:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("NLPearl webhook body is not a JSON object")
        return [self.call_event(payload, None, account)]

    def call_event(self, payload: Mapping[str, Any], request_id: str | None, account: Account | None) -> CallEvent:
        """A call object (webhook or ``GET /v2/Call``); with ``request_id``, as an event of that request.

        The webhook documents ``id`` (the call's) and no request id: it is matched by the
        call id a request look-up recorded (``call_ref``), never by an undocumented field.
        """
        call_id = payload.get("id")
        if not call_id:
            raise ValueError("NLPearl call payload without an id")
        status = _int(payload.get("status"))
        conversation = _int(payload.get("conversationStatus"))
        outcome = call_outcome(status, conversation, provider_retries(account))
        return CallEvent(
            provider_call_id=request_id or str(call_id),
            event_key=f"call:{call_id}:{status}:{conversation}",
            raw_status=raw_call_status(status, conversation),
            outcome=outcome,
            call_ref=str(call_id) if request_id else None,
            data={k: payload[k] for k in RESULT_FIELDS if payload.get(k) not in (None, "", [])} if outcome else {},
        )

    def build_status_request(self, account: Account, provider_call_id: str) -> httpx.Request | None:
        return httpx.Request(
            "GET",
            account.url(f"/v1/Outbound/CallRequest/{quote(provider_call_id, safe='')}"),
            headers=self.headers(account),
        )

    def build_call_request(self, account: Account, call_id: str) -> httpx.Request:
        return httpx.Request("GET", account.url(f"/v2/Call/{quote(call_id, safe='')}"), headers=self.headers(account))

    def status_follow_up(
        self, account: Account, provider_call_id: str, response: httpx.Response
    ) -> httpx.Request | None:
        """After a call request look-up: the look-up of its call, once it has one and is past the queue."""
        body = safe_json(response)
        if response.status_code != 200 or not isinstance(body, dict) or "conversationStatus" in body:
            return None
        call_id = body.get("callId")
        if not call_id or _int(body.get("status")) in (1, None):
            return None
        return self.build_call_request(account, str(call_id))

    def parse_status(
        self, provider_call_id: str, response: httpx.Response, account: Account | None = None
    ) -> CallEvent | None:
        """A call request look-up, or the look-up of its call (told apart by ``conversationStatus``)."""
        body = safe_json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            return None
        if "conversationStatus" in body or ("callId" not in body and "outboundId" not in body):
            return self.call_event(body, provider_call_id, account)
        status = _int(body.get("status"))
        outcome = REQUEST_OUTCOMES.get(status) if status is not None else None
        errors = body.get("errors") or []
        raw = f"request:{status}:{REQUEST_STATUS_NAMES.get(status, 'Unknown') if status is not None else '-'}"
        if errors:
            raw += " " + "; ".join(str(e) for e in errors)[:200]
        return CallEvent(
            provider_call_id=provider_call_id,
            event_key=f"{provider_call_id}:request:{status}:{body.get('callId') or '-'}",
            raw_status=raw,
            outcome=outcome,
            call_ref=str(body["callId"]) if body.get("callId") else None,
        )


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


ADAPTER = NLPearl()
