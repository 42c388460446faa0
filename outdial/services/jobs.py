"""An operator's hands on single jobs, for every face (HTTP API, CLI, campaign page):
list a campaign's jobs, retry ended ones, cancel waiting ones.

Retrying is an explicit human act: a job that went ``unknown`` may have rung the
callee already, so only a person decides to dial it again, and the job's reason
records who did (``retried by api:KEY`` or ``retried by cli:USER``). Every change
is a conditional UPDATE on the states it may start from: a worker or a webhook
that moved the job meanwhile wins, and the operator is told.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from outdial.errors import Conflict, InputError, NotFound
from outdial.models import CampaignState, JobState
from outdial.services.campaigns import find
from outdial.services.providers.base import Outcome
from outdial.services.timing.rules import Closed, first_attempt
from outdial.services.timing.spec import rules_for
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store

# Ended jobs a person may dial again: the answer was lost (unknown), or the job ran out of
# attempts, time or the provider's patience (which the operator may have fixed since).
RETRYABLE = (JobState.UNKNOWN, JobState.EXHAUSTED, JobState.EXPIRED, JobState.REJECTED)
# Jobs no worker holds: waiting to be dialled, or ended without an answer.
CANCELLABLE = (JobState.SCHEDULED, JobState.QUEUED, JobState.UNKNOWN)
PAGE_MAX = 500
_BATCH = 500


def cli_actor() -> str:
    """Who acts from the command line, as recorded with what they did."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "cli:unknown"


def api_actor(key_name: str) -> str:
    return f"api:{key_name}"


def _names(values: Iterable[str]) -> str:
    return ", ".join(str(v) for v in values)


def parse_states(values: Sequence[str], allowed: Sequence[str] = tuple(JobState), option: str = "state") -> list[str]:
    """Job states as given (repeatable, or comma lists); an unknown one is an :class:`InputError`."""
    states = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if bad := [s for s in states if s not in allowed]:
        raise InputError(f"{bad[0]!r} is not one of {_names(allowed)}", field=option)
    return states


def parse_outcomes(values: Sequence[str], option: str = "outcome") -> list[str]:
    outcomes = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if bad := [o for o in outcomes if o not in set(Outcome)]:
        raise InputError(f"{bad[0]!r} is not one of {_names(Outcome)}", field=option)
    return outcomes


@dataclass(frozen=True)
class JobPage:
    """One page of a campaign's jobs; ``next_after`` continues the listing (None: the last page)."""

    jobs: list[AnyRow]
    latest: dict[int, AnyRow]  # each job's newest attempt, where it has one
    next_after: int | None


def list_jobs(
    conn: Connection,
    campaign: AnyRow,
    *,
    states: Sequence[str] = (),
    outcomes: Sequence[str] = (),
    after_id: int = 0,
    limit: int = 50,
) -> JobPage:
    """A page of the campaign's jobs in id order, filtered by state and last outcome."""
    if not 1 <= limit <= PAGE_MAX:
        raise InputError(f"must be 1 to {PAGE_MAX}", field="limit")
    rows = list(
        job_store.campaign_jobs(conn, campaign.id, states=states, outcomes=outcomes, after_id=after_id, limit=limit + 1)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    latest = job_store.latest_attempts(conn, [int(r.id) for r in rows])
    return JobPage(rows, latest, int(rows[-1].id) if more else None)


# What a provider reported about a call (the attempt's result_data), under one set of names: shown
# with the newest attempt and exported as columns. Each is found under the names providers' documents
# give it (CallKaro call_duration, NLPearl duration and recording, MOBtexting duration, ...), in
# order of preference: a duration worked out from a look-up's start and end times (MOBtexting's
# derived_duration) only stands in when no reported duration was kept.
RESULT_FIELDS = ("duration_s", "recording_url", "transcript", "summary")
_REPORTED_AS = {
    "duration_s": ("duration_s", "call_duration", "duration", "derived_duration"),
    "recording_url": ("recording_url", "recording"),
    "transcript": ("transcript",),
    "summary": ("summary",),
}


def result_fields(result_data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :data:`RESULT_FIELDS` a provider's result data holds (only those it holds)."""
    data = result_data or {}
    found: dict[str, Any] = {}
    for name, keys in _REPORTED_AS.items():
        value = next((data[k] for k in keys if data.get(k) not in (None, "", [], {})), None)
        if value is not None:
            found[name] = value
    # Shown as a link on the campaign page: only a web address is one.
    if not str(found.get("recording_url", "https://")).startswith(("https://", "http://")):
        del found["recording_url"]
    return found


def attempt_view(attempt: AnyRow | None) -> dict[str, Any]:
    """What the newest attempt says: provider status, HTTP status, error, and any result data."""
    if attempt is None:
        return {"raw_status": None, "http_status": None, "error": None}
    data = attempt._mapping
    out: dict[str, Any] = {
        "raw_status": data.get("raw_status"),
        "http_status": data.get("http_status"),
        "error": data.get("error"),
    }
    out.update(result_fields(data.get("result_data")))
    return out


@dataclass
class JobsChanged:
    """What an operator's command did to each job asked about."""

    done: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # job id -> why not


def _check(job: AnyRow | None, job_id: int, allowed: Sequence[str], verb: str) -> str | None:
    if job is None:
        return f"no job {job_id}"
    if job.state not in allowed:
        return f"job {job_id} is {job.state}; only {_names(allowed)} jobs can be {verb}"
    return None


def _retry_one(conn: Connection, settings: Settings, job_id: int, who: str, now: datetime) -> str | None:
    """Retry one job in the caller's transaction; why not, or None when done."""
    job = job_store.get_job(conn, job_id)
    if problem := _check(job, job_id, RETRYABLE, "retried"):
        return problem
    assert job is not None
    campaign_state = campaign_store.campaign_state(conn, job.campaign_id) if job.campaign_id else None
    if campaign_state == CampaignState.CANCELLED:
        return f"job {job_id}'s campaign is cancelled"
    step = first_attempt(rules_for(job.timing, job.to_number, settings), now)
    if isinstance(step, Closed):
        return f"job {job_id} has no callable window in the next 8 days ({step.reason})"
    reason = f"retried by {who} (was {job.state}: {job.reason or '-'})"[:500]
    if not job_store.retry_job(conn, job_id, [job.state], step.at, step.window[1], now, reason):
        return f"job {job_id} changed while it was being retried; look again"
    if campaign_state == CampaignState.COMPLETED:
        campaign_store.reopen(conn, now, job.campaign_id)
    return None


def _cancel_one(conn: Connection, job_id: int, who: str, now: datetime) -> str | None:
    job = job_store.get_job(conn, job_id)
    if problem := _check(job, job_id, CANCELLABLE, "cancelled"):
        return problem
    assert job is not None
    if not job_store.cancel_job(conn, job_id, [job.state], now, f"cancelled by {who}"):
        return f"job {job_id} changed while it was being cancelled (a worker may have taken it); look again"
    return None


def retry(engine: Engine, settings: Settings, job_ids: Sequence[int], who: str, now: datetime) -> JobsChanged:
    """Schedule ended jobs again, each due at once (or when its window next opens), for one more attempt."""
    result = JobsChanged()
    for job_id in dict.fromkeys(job_ids):
        with engine.begin() as conn:
            problem = _retry_one(conn, settings, job_id, who, now)
        if problem:
            result.refused[job_id] = problem
        else:
            result.done.append(job_id)
    return result


def cancel(engine: Engine, job_ids: Sequence[int], who: str, now: datetime) -> JobsChanged:
    """Cancel jobs no worker holds (scheduled, queued, unknown); calls in progress finish."""
    result = JobsChanged()
    for job_id in dict.fromkeys(job_ids):
        with engine.begin() as conn:
            problem = _cancel_one(conn, job_id, who, now)
        if problem:
            result.refused[job_id] = problem
        else:
            result.done.append(job_id)
    return result


def retry_job(engine: Engine, settings: Settings, job_id: int, who: str, now: datetime) -> AnyRow:
    """One job retried, or :class:`NotFound` / :class:`Conflict` saying why not; the job after it."""
    return _one(engine, job_id, retry(engine, settings, [job_id], who, now))


def cancel_job(engine: Engine, job_id: int, who: str, now: datetime) -> AnyRow:
    return _one(engine, job_id, cancel(engine, [job_id], who, now))


def _one(engine: Engine, job_id: int, changed: JobsChanged) -> AnyRow:
    if problem := changed.refused.get(job_id):
        raise NotFound(problem) if problem == f"no job {job_id}" else Conflict(problem)
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None
    return job


def _campaign_ids(engine: Engine, campaign_name: str, states: Sequence[str]) -> Iterable[int]:
    """Ids of the campaign's jobs in ``states``, a batch at a time (a campaign may have millions)."""
    with engine.connect() as conn:
        campaign_id = find(conn, campaign_name).id
    after = 0
    while True:
        with engine.connect() as conn:
            ids = job_store.campaign_job_ids(conn, campaign_id, states, after, _BATCH)
        if not ids:
            return
        yield from ids
        after = ids[-1]


def retry_campaign(
    engine: Engine,
    settings: Settings,
    campaign_name: str,
    states: Sequence[str],
    who: str,
    now: datetime,
    option: str = "state",
) -> JobsChanged:
    """Retry every job of the campaign in ``states`` (e.g. all its ``unknown`` jobs); a bad state is
    an error naming ``option`` (``--state`` on the command line)."""
    wanted = parse_states(states, RETRYABLE, option) or [JobState.UNKNOWN]
    return retry(engine, settings, list(_campaign_ids(engine, campaign_name, wanted)), who, now)


def cancel_campaign_jobs(
    engine: Engine, campaign_name: str, states: Sequence[str], who: str, now: datetime, option: str = "state"
) -> JobsChanged:
    """Cancel every job of the campaign in ``states`` (which must be cancellable)."""
    wanted = parse_states(states, CANCELLABLE, option)
    if not wanted:
        raise InputError(f"name the states to cancel: any of {_names(CANCELLABLE)}", field=option)
    return cancel(engine, list(_campaign_ids(engine, campaign_name, wanted)), who, now)
