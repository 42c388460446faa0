"""The one small interface every provider adapter implements.

An adapter is request building plus response parsing: it never opens a
connection. :mod:`outdial.services.providers.transport` sends what it builds, with time-outs,
and turns transport failures into a :class:`Verdict`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outdial.errors import InputError
from outdial.services.providers.accounts import Account
from outdial.vocab import Outcome, Verdict

__all__ = ["Outcome", "Verdict"]  # re-exported: adapters and their tests name them from here


@dataclass(frozen=True)
class CallRequest:
    """What an adapter needs to place one call; ids and plain data only."""

    job_id: int
    attempt: int
    to_number: str  # E.164 with '+'
    variables: Mapping[str, Any] = field(default_factory=dict)
    # Per-call overrides of the account's options (agent_id, language, batch_id, ...).
    options: Mapping[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    # The SPEC 5 priority when the user gave one (None: not given), for providers that take it.
    priority: int | None = None

    def option(self, account: Account, key: str) -> Any:
        """A per-call option, else the account's; the account names a missing one."""
        return self.options[key] if key in self.options else account.option(key)


@dataclass(frozen=True)
class DialResult:
    verdict: Verdict
    provider_call_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    message: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class CallEvent:
    """One fact about a placed call, from a webhook or a status look-up."""

    provider_call_id: str
    event_key: str  # deduplicates: the same key is applied once
    raw_status: str
    outcome: Outcome | None  # None while the call is not over
    ended_at: datetime | None = None
    # A second id of the same call learnt from this event (NLPearl: the call id of a call
    # request), so later events that name only it are matched.
    call_ref: str | None = None
    # Documented fields that name the call another way, to match an event whose id is not
    # ours: the job and attempt read back from metadata we sent (Trillet), or the number
    # called (MOBtexting).
    job_ref: tuple[int, int] | None = None
    to_number: str | None = None
    # What the provider reports about the call (duration, recording URL, transcript,
    # summary), kept on the attempt.
    data: Mapping[str, Any] = field(default_factory=dict)


class CallOptions(BaseModel):
    """The per-call options an adapter takes (each adapter declares its own subclass).

    A job's options override the account's options of the same name; an option the
    adapter does not declare is refused, so a misspelt one is never dropped silently.
    """

    model_config = ConfigDict(extra="forbid")

    agent_id: str | None = Field(default=None, min_length=1, max_length=200)


class WebhookRefused(Exception):
    """A webhook whose signature or secret does not check out (answered with 401)."""


class Adapter:
    """Base adapter: the shared parts of the HTTP conventions; providers override the rest."""

    name: ClassVar[str]
    # Whether the provider reports outcomes by webhook, and whether it can be asked.
    has_webhooks: ClassVar[bool] = True
    # The per-call options this provider takes.
    options_model: ClassVar[type[CallOptions]] = CallOptions
    # Whether a webhook may name only a second id of the call, learnt by a status look-up
    # (the poller then resolves that id promptly, not after ``poll_after_s``).
    learns_call_ref: ClassVar[bool] = False
    # The result fields (keys of the attempt's ``result_data``) that the status look-up reports and
    # the webhook does not: an ended call that lacks one is looked up again, a bounded few times
    # (see ``outdial.scheduler.poller``), so they are kept even when the webhook settled the call.
    lookup_result_fields: ClassVar[tuple[str, ...]] = ()

    def call_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Per-call options checked against :attr:`options_model`; InputError names the first bad one."""
        try:
            checked = self.options_model.model_validate(dict(raw))
        except ValidationError as exc:
            error = exc.errors()[0]
            name = str(error["loc"][0]) if error["loc"] else "options"
            message = str(error["msg"]).removeprefix("Value error, ")
            given = f" {error['input']!r}:" if error["type"] != "extra_forbidden" else ""
            raise InputError(f"{name}:{given} {message} (a {self.name} call option)", field=name) from None
        return checked.model_dump(exclude_none=True)

    def account_problem(self, account: Account) -> str | None:
        """Why the account's options cannot make a valid call, naming the option; None if they can."""
        fields = self.options_model.model_fields
        given = {k: v for k, v in account.options.items() if k in fields}
        try:
            self.call_options(given)
        except InputError as exc:
            return f"account {account.name}: option {exc}"
        return None

    def build_request(self, account: Account, call: CallRequest) -> httpx.Request:
        raise NotImplementedError

    def parse_accepted(self, response: httpx.Response) -> str | None:
        """The provider's call id from a 2xx body; None if the body does not name one."""
        raise NotImplementedError

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        """(code, message) from an error body."""
        body = safe_json(response)
        if isinstance(body, dict):
            message = body.get("message") or body.get("error") or body.get("detail") or response.text
            code = body.get("code")
            return (str(code) if code is not None else None, str(message)[:500])
        return (None, response.text[:500] or response.reason_phrase)

    def parse_response(self, response: httpx.Response) -> DialResult:
        """Classify any HTTP answer to a create-call request."""
        status = response.status_code
        if 200 <= status < 300:
            call_id = self.parse_accepted(response)
            if call_id:
                return DialResult(Verdict.ACCEPTED, call_id, status)
            # Taken, but we cannot tell which call it is: never place it again blindly.
            return DialResult(Verdict.UNKNOWN, None, status, "no_call_id", "2xx without a call id")
        code, message = self.error_details(response)
        if status == 429:
            # Rate limited: the provider says it did nothing; it may be asked again after Retry-After.
            return DialResult(
                Verdict.RETRY_SAFE, None, status, code or str(status), message, self.retry_after(response)
            )
        if 400 <= status < 500 and status not in (408, 409):
            return DialResult(Verdict.REJECTED, None, status, code or str(status), message)
        # Any 5xx (503 included: no document says a 503 means the call was not placed), 408, 409:
        # the provider may have acted on it, so it is never re-sent blindly.
        return DialResult(Verdict.UNKNOWN, None, status, code or str(status), message)

    def retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    # Outcomes --------------------------------------------------------------------------

    def verify_webhook(self, account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Check a webhook's authenticity; raise :class:`WebhookRefused` if it fails.

        Providers that do not sign get a shared secret, sent as ``Authorization:
        Bearer <secret>`` or as ``?token=<secret>`` on the webhook URL (passed in
        ``headers`` as ``x-outdial-token`` by the API).
        """
        secret = account.webhook_secret()
        if not secret:
            raise WebhookRefused(f"account {account.name} has no webhook secret configured")
        given = headers.get("x-outdial-token") or ""
        auth = headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        if not given or not hmac.compare_digest(given.encode(), secret.encode()):
            raise WebhookRefused("missing or wrong webhook secret")

    def parse_webhook(self, body: bytes, account: Account | None = None) -> list[CallEvent]:
        """The events of a webhook body; ``account`` carries options that change how statuses read."""
        raise NotImplementedError

    def build_status_request(self, account: Account, provider_call_id: str) -> httpx.Request | None:
        """A request that looks a call up, or None where the provider has no status API."""
        return None

    def status_follow_up(
        self, account: Account, provider_call_id: str, response: httpx.Response
    ) -> httpx.Request | None:
        """A second look-up that the first answer points to (NLPearl: request, then call); None if none."""
        return None

    def parse_status(
        self, provider_call_id: str, response: httpx.Response, account: Account | None = None
    ) -> CallEvent | None:
        return None


def json_post(url: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> httpx.Request:
    """A POST of ``body`` as UTF-8 JSON."""
    content = json.dumps(body, ensure_ascii=False).encode()
    return httpx.Request("POST", url, headers={**headers, "Content-Type": "application/json"}, content=content)


def json_field(response: httpx.Response, *names: str) -> str | None:
    """The first non-empty of ``names`` in a JSON object body, as text; None if there is none."""
    body = safe_json(response)
    if not isinstance(body, dict):
        return None
    value = next((body[n] for n in names if body.get(n)), None)
    return str(value) if value is not None else None


def text_values(variables: Mapping[str, Any]) -> dict[str, str]:
    """Lead variables for APIs that take text only: scalars as text, structures as JSON, nulls left out."""
    out: dict[str, str] = {}
    for key, value in variables.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[str(key)] = str(value)
        else:
            out[str(key)] = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return out


def parse_time(value: object, *, naive_is_utc: bool = True) -> datetime | None:
    """A provider's timestamp: ISO 8601 (``Z`` allowed) or Unix seconds.

    A time without an offset is read as UTC, or refused (None) where the
    provider's zone is unknown and a guess could be hours off.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return parsed
    return parsed.replace(tzinfo=UTC) if naive_is_utc else None


def safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
