"""Applying what a provider says about a call: once, in any order, from a webhook or a poll."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine

from outdial import metrics
from outdial.models import JobState
from outdial.services.providers.base import CallEvent
from outdial.services.retries import after_outcome
from outdial.services.timing.spec import rules_for
from outdial.settings import Settings
from outdial.store import events as event_store
from outdial.store import jobs as job_store


def record_event(
    engine: Engine,
    provider: str,
    account: str | None,
    event: CallEvent,
    payload: str,
    kind: str,
    now: datetime,
    settings: Settings,
) -> str:
    """Store a raw event and apply it; what it did: duplicate, noted, unmatched, applied, stale, ..."""
    with engine.begin() as conn:
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
                "ended_at": event.ended_at,
                "received_at": now,
            },
        )
        if event_id is None:
            return "duplicate"
        if event.outcome is None:
            event_store.mark_event(conn, event_id, "noted")
            return "noted"
        return apply_outcome(
            conn,
            event_id,
            provider,
            event.provider_call_id,
            event.outcome,
            event.raw_status,
            event.ended_at or now,
            now,
            settings,
        )


def apply_outcome(
    conn: Connection,
    event_id: int,
    provider: str,
    call_id: str,
    outcome: str,
    raw_status: str,
    ended_at: datetime,
    now: datetime,
    settings: Settings,
) -> str:
    attempt = job_store.attempt_for_call(conn, provider, call_id)
    if attempt is None:
        # The webhook beat the worker's own record of the call id: kept, applied when it lands.
        event_store.mark_event(conn, event_id, "unmatched")
        return "unmatched"
    if not job_store.settle_attempt(conn, attempt.id, outcome, raw_status, ended_at):
        event_store.mark_event(conn, event_id, "duplicate_outcome", attempt.job_id)
        return "duplicate_outcome"
    metrics.observe_outcome(provider, outcome)  # once per call: only the first outcome settles it
    job = job_store.get_job(conn, attempt.job_id)
    # An ``unknown`` job whose call id we hold is reconciled by the outcome the provider reports.
    awaiting = (JobState.ACCEPTED, JobState.UNKNOWN)
    if job is None or job.state not in awaiting or job.provider_call_id != call_id:
        event_store.mark_event(conn, event_id, "stale", attempt.job_id)
        return "stale"
    step = after_outcome(
        rules_for(job.timing, job.to_number, settings),
        job.retry_on,
        outcome,
        job.attempts_used,
        attempt.due_at or attempt.requested_at,
        ended_at,
    )
    moved = job_store.set_state(
        conn,
        job.id,
        job.state,
        step.state,
        now,
        next_due_at=step.due,
        window_end=step.window_end,
        last_outcome=outcome,
        reason=step.reason,
        transport_retries=0,
    )
    event_store.mark_event(conn, event_id, "applied" if moved else "stale", job.id)
    return "applied" if moved else "stale"


def replay_unmatched(conn: Connection, provider: str, call_id: str, now: datetime, settings: Settings) -> None:
    """Apply events that arrived before ``call_id`` was recorded."""
    for event in event_store.unmatched_events(conn, provider, call_id):
        if event.outcome is not None:
            apply_outcome(
                conn,
                event.id,
                provider,
                call_id,
                event.outcome,
                event.raw_status or "",
                event.ended_at or now,
                now,
                settings,
            )


def apply_late_matches(engine: Engine, now: datetime, settings: Settings, limit: int = 500) -> int:
    """Apply events stored as unmatched whose call id is now known; how many were applied.

    A webhook can commit "unmatched" just after the worker recorded the call id and
    looked for waiting events, so the worker alone cannot catch every one.
    """
    applied = 0
    with engine.begin() as conn:
        for event in event_store.matchable_unmatched(conn, limit):
            if event.outcome is None:
                event_store.mark_event(conn, event.id, "noted")
                continue
            result = apply_outcome(
                conn,
                event.id,
                event.provider,
                event.provider_call_id,
                event.outcome,
                event.raw_status or "",
                event.ended_at or now,
                now,
                settings,
            )
            applied += result == "applied"
    return applied
