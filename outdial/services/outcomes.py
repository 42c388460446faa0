"""Applying what a provider says about a call: once, in any order, from a webhook or a poll."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine

from outdial import metrics
from outdial.models import JobState
from outdial.services.providers import adapter_for
from outdial.services.providers.base import CallEvent
from outdial.services.retries import after_outcome
from outdial.services.timing.spec import rules_for
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import events as event_store
from outdial.store import jobs as job_store

# How far back a provider may date a call's end. Later than now is read as now: a clock
# ahead (or a year 8999) must not push retries out, nor send the retry search across years.
PROVIDER_TIME_PAST = timedelta(days=7)


def clamp_provider_time(value: datetime | None, now: datetime) -> datetime | None:
    """A provider-supplied time, clamped into ``[now - 7 days, now]``."""
    if value is None:
        return None
    return min(max(value, now - PROVIDER_TIME_PAST), now)


class Applied(StrEnum):
    """What recording a provider event did; also kept on the event (``provider_events.applied``)."""

    APPLIED = "applied"  # the job moved on: completed, retry scheduled, exhausted, ...
    DUPLICATE = "duplicate"  # the same event (provider, key) was stored before
    DUPLICATE_OUTCOME = "duplicate_outcome"  # another event already gave this attempt its outcome
    NOTED = "noted"  # an event without an outcome (ringing, answered, ...)
    UNMATCHED = "unmatched"  # its call id is not recorded yet: applied when it is
    STALE = "stale"  # the job is no longer waiting for this call's outcome


def record_event(
    engine: Engine,
    provider: str,
    account: str | None,
    event: CallEvent,
    payload: str,
    kind: str,
    now: datetime,
    settings: Settings,
) -> Applied:
    """Store a raw event and apply it; what that did."""
    ended_at = clamp_provider_time(event.ended_at, now)
    with engine.begin() as conn:
        learnt = event.call_ref and job_store.set_call_ref(conn, provider, event.provider_call_id, event.call_ref)
        if learnt and account is not None and event.call_ref:
            # A look-up taught the call's second id: events that named only it apply now.
            replay_unmatched(conn, provider, account, event.call_ref, now, settings)
        event_id = event_store.store_event(
            conn,
            {
                "provider": provider,
                "account": account,
                "event_key": event.event_key,
                "provider_call_id": event.provider_call_id,
                "kind": kind,
                "payload": payload,
                "raw_status": event.raw_status,
                "outcome": event.outcome,
                "ended_at": ended_at,
                "received_at": now,
            },
        )
        if event_id is None:
            if event.outcome is not None:
                # The same fact told again may say more about the call: NLPearl's webhook and its
                # call look-up share a key, and only the look-up has the recording and summary.
                add_result(conn, provider, account, event.provider_call_id, event.data)
            return Applied.DUPLICATE
        if event.outcome is None:
            event_store.mark_event(conn, event_id, Applied.NOTED)
            return Applied.NOTED
        attempt = job_store.attempt_for_call(conn, provider, account, event.provider_call_id)
        if attempt is None and account is not None:
            attempt = match_by_documented_fields(conn, provider, account, event)
        return apply_outcome(
            conn,
            event_id,
            provider,
            account,
            event.provider_call_id,
            event.outcome,
            event.raw_status,
            ended_at or now,
            now,
            settings,
            data=event.data,
            attempt=attempt,
        )


def reported(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values an event actually reports: an empty one (None, "", [], {}) says nothing, so it
    never replaces what an earlier event kept. 0 and False are values."""
    return {k: v for k, v in (data or {}).items() if v is not None and v not in ("", [], {})}


def add_result(conn: Connection, provider: str, account: str | None, call_id: str, data: Mapping[str, Any]) -> None:
    """Add to a settled call's result data what an event reports (under the call's lock)."""
    added = reported(data)
    if not added:
        return
    event_store.lock_call(conn, provider, call_id)
    attempt = job_store.attempt_for_call(conn, provider, account, call_id)
    if attempt is not None:
        job_store.add_result_data(conn, attempt.id, added)


def match_by_documented_fields(conn: Connection, provider: str, account: str, event: CallEvent) -> AnyRow | None:
    """The attempt an event names other than by our call id, and only on the same account.

    By the job and attempt read back from metadata we sent (an ``unknown`` job whose
    create-call answer was lost takes the event's call id), or by the number called when
    exactly one call to it is open (the event's id is then kept as the call's second id).
    """
    if event.job_ref is not None:
        job_id, number = event.job_ref
        found = job_store.attempt_by_number(conn, job_id, number)
        if (
            found is not None
            and found.provider == provider
            and found.account == account
            and job_store.adopt_call_id(conn, found.id, job_id, event.provider_call_id)
        ):
            return job_store.attempt_for_call(conn, provider, account, event.provider_call_id)
    if event.to_number is not None:
        open_calls = job_store.open_calls_to(conn, account, event.to_number)
        if len(open_calls) == 1 and open_calls[0].provider == provider:
            job_store.set_call_ref(conn, provider, open_calls[0].provider_call_id, event.provider_call_id)
            return open_calls[0]
    return None


def apply_outcome(
    conn: Connection,
    event_id: int,
    provider: str,
    account: str | None,
    call_id: str,
    outcome: str,
    raw_status: str,
    ended_at: datetime,
    now: datetime,
    settings: Settings,
    data: Mapping[str, Any] | None = None,
    attempt: AnyRow | None = None,
) -> Applied:
    event_store.lock_call(conn, provider, call_id)
    # Only the account the event came in on: its secret vouches for its own calls, no other's.
    attempt = attempt or job_store.attempt_for_call(conn, provider, account, call_id)
    if attempt is None:
        # The webhook beat the worker's own record of the call id: kept, applied when it lands.
        event_store.mark_event(conn, event_id, Applied.UNMATCHED)
        return Applied.UNMATCHED
    if not job_store.settle_attempt(conn, attempt.id, outcome, raw_status, ended_at, data):
        # Another event settled the call first (a look-up before the webhook, or the other way
        # round): what this one adds about the call is kept; the outcome and the job stay.
        job_store.add_result_data(conn, attempt.id, reported(data))
        event_store.mark_event(conn, event_id, Applied.DUPLICATE_OUTCOME, attempt.job_id)
        return Applied.DUPLICATE_OUTCOME
    metrics.observe_outcome(provider, outcome)  # once per call: only the first outcome settles it
    job = job_store.get_job(conn, attempt.job_id)
    # An ``unknown`` job whose call id we hold is reconciled by the outcome the provider reports.
    awaiting = (JobState.ACCEPTED, JobState.UNKNOWN)
    if job is None or job.state not in awaiting or job.provider_call_id != attempt.provider_call_id:
        event_store.mark_event(conn, event_id, Applied.STALE, attempt.job_id)
        return Applied.STALE
    step = after_outcome(
        rules_for(job.timing, job.to_number, settings),
        job.retry_on,
        outcome,
        job.attempts_used,
        attempt.due_at or attempt.requested_at,
        ended_at,
    )
    moved = job_store.settle(
        conn,
        job.id,
        JobState(job.state),
        JobState(step.state),
        now,
        step.reason,
        f"outcome {outcome} ({raw_status})",
        next_due_at=step.due,
        window_end=step.window_end,
        last_outcome=outcome,
        transport_retries=0,
    )
    applied = Applied.APPLIED if moved else Applied.STALE
    event_store.mark_event(conn, event_id, applied, job.id)
    return applied


def replay_unmatched(
    conn: Connection, provider: str, account: str, call_id: str, now: datetime, settings: Settings
) -> None:
    """Apply the account's events that arrived before ``call_id`` was recorded, read under its lock."""
    event_store.lock_call(conn, provider, call_id)
    for event in event_store.unmatched_events(conn, provider, account, call_id):
        if event.outcome is not None:
            apply_outcome(
                conn,
                event.id,
                provider,
                account,
                call_id,
                event.outcome,
                event.raw_status or "",
                event.ended_at or now,
                now,
                settings,
                data=stored_result(event),
            )


def replay_waiting(
    engine: Engine, provider: str, account: str, call_id: str, now: datetime, settings: Settings
) -> None:
    """Apply, in a transaction of its own, the account's events that waited for ``call_id`` (the
    worker's answer found some). Read again under the call's lock: the scheduler's sweep may
    have applied them since."""
    with engine.begin() as conn:
        replay_unmatched(conn, provider, account, call_id, now, settings)


def stored_result(event: AnyRow) -> dict[str, Any]:
    """What a stored webhook reported about the call (duration, recording, ...), read again from
    its raw body; empty for a poll or a body that no longer reads."""
    if event.kind != "webhook" or not event.payload:
        return {}
    try:
        events = adapter_for(event.provider).parse_webhook(event.payload.encode())
    except (KeyError, ValueError, TypeError, AttributeError):
        return {}
    return next((dict(e.data) for e in events if e.event_key == event.event_key), {})


def apply_late_matches(engine: Engine, now: datetime, settings: Settings, limit: int = 500) -> int:
    """Apply events stored as unmatched whose call id is now known; how many were applied.

    A webhook can commit "unmatched" just after the worker recorded the call id and
    looked for waiting events, so the worker alone cannot catch every one.
    """
    applied = 0
    with engine.begin() as conn:
        # Events that never matched a call (or never parsed) are not kept forever.
        event_store.expire_events(conn, now - timedelta(seconds=settings.unmatched_event_ttl_s))
        for event in event_store.matchable_unmatched(conn, limit):
            event_store.lock_call(conn, event.provider, event.provider_call_id)
            if not event_store.still_unmatched(conn, event.id):
                continue  # the worker applied it after its answer committed (``replay_waiting``)
            if event.outcome is None:
                event_store.mark_event(conn, event.id, Applied.NOTED)
                continue
            result = apply_outcome(
                conn,
                event.id,
                event.provider,
                event.account,
                event.provider_call_id,
                event.outcome,
                event.raw_status or "",
                event.ended_at or now,
                now,
                settings,
                data=stored_result(event),
            )
            applied += result is Applied.APPLIED
    return applied
