"""Turning a call request or a campaign's leads into scheduled jobs.

The HTTP API, the Celery ``outdial.enqueue_call`` task and campaign imports
all come through here, so the same input always makes the same job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from outdial.errors import Conflict, InputError
from outdial.models import JobState
from outdial.services.intake.safe_json import check_metadata, value_problem
from outdial.services.providers import adapter_for
from outdial.services.timing.admit import admit, merge_layers
from outdial.services.timing.spec import TIMING_EXAMPLE, TimingFields, parse_number
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import dnc as dnc_store
from outdial.store import jobs as job_store


class CallBody(TimingFields):
    """A single call: the number, the account, the lead's variables, the SPEC 5 timing fields,
    and the per-call options of the account's provider.

    Those options are the provider's to declare (its adapter's ``options_model``) and are
    checked once the account is known (:meth:`Adapter.call_options`). For compatibility
    they may also be given at the top level, as a CallKaro body has them (``agent_id``,
    ``batch_id``, ``language``): any field that is not outdial's is taken for one, so a
    misspelt field is still refused, by the provider's model, naming it.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "to_number": "+14155550123",
                    "account": "sim-callkaro",
                    "metadata": {"name": "Maria Lopez", "appointment": "Wednesday 2 December, 10:30"},
                    "schedule_at": "2026-12-02T09:00:00",
                    **TIMING_EXAMPLE,
                    "timezone": "America/Los_Angeles",
                    "priority": 10,
                    "options": {"language": "en"},
                },
                {
                    "to_number": "+919876543210",
                    "account": "sim-callkaro",
                    "metadata": {"name": "Abhinav", "city": "Bangalore"},
                    "timezone": "Asia/Kolkata",
                    "options": {"language": "hi"},
                },
            ]
        },
    )

    to_number: str = Field(pattern=r"^\+[1-9]\d{1,14}$", description="E.164.", examples=["+14155550123"])
    account: str = Field(
        min_length=1, max_length=100, description="An account of the accounts file.", examples=["sim-callkaro"]
    )
    metadata: Annotated[dict[str, Any], AfterValidator(check_metadata)] = Field(
        default_factory=dict,
        description="The lead's variables, passed to the provider.",
        examples=[{"name": "Maria Lopez", "appointment": "Wednesday 2 December, 10:30"}],
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-call options of the account's provider, e.g. CallKaro's language.",
        examples=[{"language": "en"}],
    )

    @model_validator(mode="before")
    @classmethod
    def _provider_fields_at_the_top(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        theirs = {k: v for k, v in data.items() if k not in cls.model_fields}
        if not theirs:
            return data
        given = data.get("options")
        nested = dict(given) if isinstance(given, dict) else {}
        both = sorted(set(theirs) & set(nested))
        if both:
            raise ValueError(f"{both[0]!r} is given both at the top level and in options")
        return {**{k: v for k, v in data.items() if k in cls.model_fields}, "options": {**theirs, **nested}}

    def timing_layer(self) -> dict[str, Any]:
        return {k: v for k, v in self.given().items() if k in TimingFields.model_fields}

    def digest(self) -> str:
        """What the request asks for, as a hash: the same key sent with another request is refused."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    created: bool  # False when the idempotency key named an existing job
    state: str
    next_due_at: datetime | None = None
    reason: str | None = None  # why a job ended at once: e.g. window_closed for a schedule_at long past

    def as_dict(self) -> dict[str, Any]:
        """The answer to the caller (``POST /calls``, ``outdial.enqueue_call``): the job and when it is due."""
        due = self.next_due_at.isoformat() if self.next_due_at else None
        answer = {"job_id": self.job_id, "state": self.state, "created": self.created, "next_due_at": due}
        return answer | ({"reason": self.reason} if self.reason else {})


def job_values(
    *,
    account: str,
    to_number: str,
    fields: TimingFields,
    variables: dict[str, Any],
    options: dict[str, Any],
    retry_on: Sequence[str],
    now: datetime,
    settings: Settings,
    suppressed: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """The row of a new job, with its first due time (or its rejection) already decided."""
    admission = admit(fields, to_number, now, settings)
    state = JobState.SUPPRESSED if suppressed else admission.state
    return {
        "account": account,
        "to_number": to_number,
        "variables": variables,
        "options": options,
        "timing": admission.timing,
        "retry_on": list(retry_on),
        "state": state,
        "priority": admission.priority,
        "next_due_at": admission.next_due_at,
        "window_end": admission.window_end,
        "reason": "do_not_call" if suppressed else admission.reason,
        "state_changed_at": now,
        "created_at": now,
        **extra,
    }


def lead_job_values(
    campaign: AnyRow,
    lead_id: int,
    phone: str,
    lead_timing: dict[str, Any],
    variables: dict[str, Any],
    round: int,
    now: datetime,
    settings: Settings,
) -> dict[str, Any]:
    """The job of one campaign lead in one round: the lead's timing layered over the campaign's."""
    return job_values(
        account=campaign.account,
        to_number=phone,
        fields=merge_layers(campaign.timing, lead_timing),
        variables=variables,
        options={},
        retry_on=campaign.retry_on,
        now=now,
        settings=settings,
        campaign_id=campaign.id,
        lead_id=lead_id,
        round=round,
    )


def enqueue_call(
    engine: Engine,
    body: CallBody,
    now: datetime,
    settings: Settings,
    idempotency_key: str | None = None,
    campaign: AnyRow | None = None,
) -> Enqueued:
    """Create the job for one call; a repeated ``idempotency_key`` returns the first job instead.

    Raises :class:`~outdial.errors.Conflict` when the key was first sent with a different request:
    answering with that job would hand one caller another's call."""
    parse_number(body.to_number)
    fields = merge_layers(campaign.timing if campaign else {}, body.timing_layer())
    digest = body.digest()
    with engine.begin() as conn:
        if idempotency_key and (existing := _existing(conn, idempotency_key, digest)):
            return existing
        values = job_values(
            account=body.account,
            to_number=body.to_number,
            fields=fields,
            variables=body.metadata,
            options=dict(body.options),
            retry_on=(campaign.retry_on if campaign else None) or settings.retry_on,
            now=now,
            settings=settings,
            suppressed=dnc_store.is_listed(conn, body.to_number),
            idempotency_key=idempotency_key,
            request_hash=digest if idempotency_key else None,
            campaign_id=campaign.id if campaign else None,
        )
        try:
            with conn.begin_nested():
                job_id = job_store.insert_job(conn, values)
        except IntegrityError:
            # Another request with the same key won the race: return its job.
            if idempotency_key and (existing := _existing(conn, idempotency_key, digest)):
                return existing
            raise
        return Enqueued(job_id, True, values["state"], values["next_due_at"], values["reason"])


def _existing(conn: Connection, key: str, digest: str) -> Enqueued | None:
    job_id = job_store.job_by_idempotency_key(conn, key)
    if job_id is None:
        return None
    job = job_store.get_job(conn, job_id)
    # Jobs made before the hash was kept have none: nothing to compare, so the first job stands.
    if job is not None and job.request_hash is not None and job.request_hash != digest:
        raise Conflict(f"the Idempotency-Key {key!r} was already used with a different request")
    if job is None:
        return Enqueued(job_id, False, "unknown")
    return Enqueued(job_id, False, job.state, job.next_due_at, job.reason)


def unknown_account(name: str, accounts: Mapping[str, Any]) -> str | None:
    """Why ``name`` is not a usable account, or None when it is.

    An account whose options its provider refuses (say CallKaro's ``language`` outside its
    enum) is not usable either: refused here, at campaign or call creation, naming the
    option, rather than failing (or being silently dropped) at dial time.
    """
    if name not in accounts:
        return f"no account named {name!r}; known: {', '.join(sorted(accounts)) or 'none'}"
    try:
        adapter = adapter_for(accounts[name].provider)
    except KeyError as exc:
        return str(exc.args[0])
    return adapter.account_problem(accounts[name])


def check_call(body: CallBody, accounts: Mapping[str, Any]) -> None:
    """Refuse a call on an unusable account, or with options its provider does not take or that
    cannot be sent (InputError naming the field); the options are kept as the provider's model reads them."""
    if problem := unknown_account(body.account, accounts):
        raise InputError(problem, field="account")
    for name, value in body.options.items():
        if problem := value_problem(value):
            raise InputError(problem, field=name)
    body.options = adapter_for(accounts[body.account].provider).call_options(body.options)
