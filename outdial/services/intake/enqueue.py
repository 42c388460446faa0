"""Turning a call request or a campaign's leads into scheduled jobs.

The HTTP API, the Celery ``outdial.enqueue_call`` task and campaign imports
all come through here, so the same input always makes the same job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from outdial.errors import Conflict
from outdial.models import JobState
from outdial.services.intake.safe_json import check_metadata, check_text
from outdial.services.timing.admit import admit, merge_layers
from outdial.services.timing.spec import TimingFields, parse_number
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import dnc as dnc_store
from outdial.store import jobs as job_store

# Free text that is sent to a provider: UTF-8 encodable (no lone surrogate).
Text = Annotated[str, AfterValidator(check_text)]

LANGUAGES = ("hi", "en", "kn", "mr", "ta", "te", "bn", "gu", "ml")


class CallBody(TimingFields):
    """A single call: a superset of CallKaro's create-call body, plus ``account``."""

    model_config = ConfigDict(extra="forbid")

    to_number: str = Field(pattern=r"^\+[1-9]\d{1,14}$")
    account: str = Field(min_length=1, max_length=100)
    agent_id: Text | None = Field(default=None, max_length=200)
    batch_id: Text | None = Field(default=None, max_length=200)
    metadata: Annotated[dict[str, Any], AfterValidator(check_metadata)] = Field(default_factory=dict)
    language: str | None = Field(default=None, pattern="^(" + "|".join(LANGUAGES) + ")$")

    def timing_layer(self) -> dict[str, Any]:
        return {k: v for k, v in self.given().items() if k in TimingFields.model_fields}

    def options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("agent_id", "batch_id", "language") if getattr(self, k) is not None}

    def digest(self) -> str:
        """What the request asks for, as a hash: the same key sent with another request is refused."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    created: bool  # False when the idempotency key named an existing job
    state: str


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
            options=body.options(),
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
        return Enqueued(job_id, True, values["state"])


def _existing(conn: Connection, key: str, digest: str) -> Enqueued | None:
    job_id = job_store.job_by_idempotency_key(conn, key)
    if job_id is None:
        return None
    job = job_store.get_job(conn, job_id)
    # Jobs made before the hash was kept have none: nothing to compare, so the first job stands.
    if job is not None and job.request_hash is not None and job.request_hash != digest:
        raise Conflict(f"the Idempotency-Key {key!r} was already used with a different request")
    return Enqueued(job_id, False, job.state if job else "unknown")
