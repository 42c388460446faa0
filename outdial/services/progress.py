"""A campaign's progress at one instant: what ``outdial status`` shows and
``GET /campaigns/{name}/status`` returns, built from the same queries; and one
job with its attempts and history (``GET /jobs/{id}``, ``outdial status --job``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from outdial.models import ACTIVE_STATES, JobState
from outdial.services.waiting import explain
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import events as event_store
from outdial.store import jobs as job_store
from outdial.store import ops as ops_store
from outdial.store import progress as progress_store

RATE_WINDOW_MINUTES = 5
RECENT_ERRORS = 5
ACTIVE = {s.value for s in ACTIVE_STATES}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def snapshot(conn: Connection, campaign: AnyRow, now: datetime, settings: Settings) -> dict[str, Any]:
    """Counts per state, outcomes, next due time, why it is (not) dialling, dial rate and recent
    errors, as plain JSON."""
    found = job_store.counts_by_state(conn, campaign.id)
    counts = {state.value: found.get(state.value, 0) for state in JobState}
    total = sum(counts.values())
    active = sum(n for state, n in counts.items() if state in ACTIVE)
    recent = progress_store.dials_since(conn, campaign.id, now - timedelta(minutes=RATE_WINDOW_MINUTES))
    errors = progress_store.recent_errors(conn, campaign.id, RECENT_ERRORS)
    return {
        "campaign": campaign.name,
        "id": campaign.id,
        "state": campaign.state,
        "pause_reason": campaign.pause_reason,
        "account": campaign.account,
        "round": campaign.round,
        "as_of": now.isoformat(),
        "jobs": total,
        "active": active,
        "done": total - active,
        "percent_done": round(100 * (total - active) / total, 1) if total else 0.0,
        # Every job is terminal: nothing more will be dialled in this round.
        "finished": total > 0 and active == 0,
        "counts": counts,
        "outcomes": progress_store.last_outcomes(conn, campaign.id),
        "attempt_results": ops_store.attempt_outcomes(conn, campaign.id),
        "next_due_at": _iso(progress_store.next_due(conn, campaign.id)),
        # Why it is not dialling (or that it is), and the next due time in its zone and UTC.
        "why": explain(conn, campaign, now, settings).as_json(),
        "dial_rate": dial_rate(recent, now),
        "recent_errors": [
            {
                "job_id": e.job_id,
                "at": _iso(e.requested_at),
                "result": e.result,
                "http_status": e.http_status,
                "error_code": e.error_code,
                "error": e.error,
            }
            for e in errors
        ],
    }


def dial_rate(recent: progress_store.RecentDials, now: datetime) -> dict[str, Any]:
    """Dials per minute over the last :data:`RATE_WINDOW_MINUTES`, or over the part of it since the
    campaign's first dial (``partial``): 60 calls in a campaign's first minute are 60 a minute, not
    12. At least a minute, so the first few calls do not read as thousands a minute."""
    window = float(RATE_WINDOW_MINUTES)
    partial = recent.first_at is not None and not recent.dialled_before
    if partial and recent.first_at is not None:
        window = min(window, max(1.0, (now - recent.first_at).total_seconds() / 60))
    return {
        "window_minutes": round(window, 2),
        "attempts": recent.count,
        "per_minute": round(recent.count / window, 2),
        "partial": partial,
    }


def job_summary(job: AnyRow) -> dict[str, Any]:
    """A job without its attempts: what a listing shows, and the head of :func:`job_detail`."""
    return {
        "id": job.id,
        "state": job.state,
        "to_number": job.to_number,
        "account": job.account,
        "campaign_id": job.campaign_id,
        "lead_id": job.lead_id,
        "round": job.round,
        "priority": job.priority,
        "idempotency_key": job.idempotency_key,
        "created_at": _iso(job.created_at),
        "state_changed_at": _iso(job.state_changed_at),
        "next_due_at": _iso(job.next_due_at),
        "attempts_used": job.attempts_used,
        "provider_call_id": job.provider_call_id,
        "last_outcome": job.last_outcome,
        "reason": job.reason,
    }


def job_detail(conn: Connection, job_id: int) -> dict[str, Any] | None:
    """A job's state, its attempts and what became of each, and every transition it made; None if no such job."""
    job = job_store.get_job(conn, job_id)
    if job is None:
        return None
    attempts = list(job_store.attempts_of(conn, job_id))
    # Every status the provider reported, under either id of the call: one it did not
    # document is kept and shown here, never silently mapped to an outcome.
    said = event_store.reported(conn, [i for a in attempts for i in (a.provider_call_id, a.provider_ref) if i])
    return {
        **job_summary(job),
        "attempts": [
            {
                "number": a.number,
                "requested_at": _iso(a.requested_at),
                "http_status": a.http_status,
                "provider_call_id": a.provider_call_id,
                "result": a.result,
                "outcome": a.outcome,
                "raw_status": a.raw_status,
                "error": a.error,
                "provider_ref": a.provider_ref,
                "result_data": a.result_data,
                "reported": [
                    {"raw_status": e.raw_status, "outcome": e.outcome, "applied": e.applied, "at": _iso(e.received_at)}
                    for i in (a.provider_call_id, a.provider_ref)
                    if i
                    for e in said.get(i, [])
                ],
            }
            for a in attempts
        ],
        # The job's history: every transition, oldest first (job_events).
        "events": [
            {"at": _iso(e.at), "from": e.from_state, "to": e.to_state, "attempt": e.attempt, "reason": e.reason}
            for e in job_store.job_events_of(conn, job_id)
        ],
    }
