"""Placing one queued job: the checks of the last moment, one request, and its record.

``queued -> dialing`` is committed before the request leaves and is
conditional, so a second delivery of the same task finds nothing to do.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Connection, Engine

from outdial import logs, metrics
from outdial.models import CampaignState, JobState
from outdial.services.outcomes import replay_unmatched
from outdial.services.pacing.pacer import Gate, Pacer
from outdial.services.providers import adapter_for
from outdial.services.providers.accounts import Account, AccountError
from outdial.services.providers.base import CallRequest, DialResult, Verdict
from outdial.services.providers.transport import Sent, Timeouts, send
from outdial.services.retries import after_outcome, transport_backoff
from outdial.services.timing.rules import Closed, recheck
from outdial.services.timing.spec import rules_for
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store

log = logging.getLogger("outdial.dispatch")


@dataclass
class Dispatcher:
    engine: Engine
    settings: Settings
    accounts: dict[str, Account]
    client: httpx.Client
    pacer: Pacer | None = None  # None: no cluster-wide limits (tests, single-process tools)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(self.settings.provider_connect_timeout_s, self.settings.provider_read_timeout_s)

    def dispatch(self, job_id: int, now: datetime | None = None) -> str:
        """Place job ``job_id`` if it is still queued and callable; what happened, as a word.

        Any exception ends the job ``rejected``: a job that fails the same way on every
        delivery must not be re-sent by the lease forever (nor dialled again after a request
        may have left). The reason names the exception's type and where it was raised, never
        its message: that may hold the job's number or metadata."""
        try:
            return self._dispatch(job_id, now or datetime.now(UTC))
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            reason = f"internal error: {type(exc).__name__}" + (
                f" at {Path(where.filename).name}:{where.lineno}" if where else ""
            )
            log.error("dispatch failed; job rejected", extra={"job_id": job_id, "reason": reason})
            with self.engine.begin() as conn:
                for state in (JobState.QUEUED, JobState.DIALING):
                    if job_store.set_state(conn, job_id, state, JobState.REJECTED, datetime.now(UTC), reason=reason):
                        break
            return "rejected"

    def _dispatch(self, job_id: int, now: datetime) -> str:
        started = time.monotonic()
        with self.engine.begin() as conn:
            job = job_store.job_to_dispatch(conn, job_id)
            if job is None:
                return "missing"
            logs.bind(job_id=job_id, campaign_id=job.campaign_id, account=job.account)
            if job.state != JobState.QUEUED:
                return f"skipped:{job.state}"
            held = self._hold(conn, job, now)
            if isinstance(held, str):
                return held
            prepared = self._prepare(conn, job, now)
            if isinstance(prepared, str):
                return prepared
            account, request = prepared
            # No limit applies to this call: ``queued -> dialing`` commits with the checks, in
            # one transaction (one pool checkout and one BEGIN/COMMIT less than the paced path).
            unpaced = not self._paced(account, job.campaign_id, held)
            if unpaced:
                now += timedelta(seconds=time.monotonic() - started)
                start = job_store.begin_dial(conn, job, account.provider, now)
        attempt = job.attempts_used + (0 if job.transport_retries else 1)
        gate = Gate(True)
        if self.pacer is not None and not unpaced:
            gate = self.pacer.admit(account, job.id, attempt, job.to_number, now, job.campaign_id, held)
            if not gate.open:
                metrics.observe_pacing_wait(account.name)
                with self.engine.begin() as conn:
                    job_store.set_state(
                        conn, job.id, JobState.QUEUED, JobState.SCHEDULED, now, next_due_at=gate.retry_at
                    )
                return f"paced:{gate.reason}"
        if not unpaced:
            # Time spent waiting for a turn counts: the request is stamped when it leaves.
            now += timedelta(seconds=time.monotonic() - started)
            with self.engine.begin() as conn:
                start = job_store.begin_dial(conn, job, account.provider, now)
        if start is None:
            if self.pacer is not None:
                self.pacer.after(account, job.to_number, gate, DialResult(Verdict.RETRY_SAFE))
            return "skipped:raced"
        extra = {
            "job_id": job_id,
            "campaign_id": job.campaign_id,
            "attempt": start.number,
            "attempt_id": start.attempt_id,
            "account": account.name,
        }
        log.info("dialing", extra=extra)
        ticket = self.pacer.clear_to_send(account, str(start.attempt_id)) if self.pacer is not None else None
        if self.pacer is not None and ticket is None:
            # Nothing left: the job waits for a later turn like any transport trouble, budget untouched.
            sent = Sent(DialResult(Verdict.RETRY_SAFE, error_code="pacing_wait", message="no room to send"), 0.0)
        else:
            sent = send(self.client, adapter_for(account.provider), request, self.timeouts)
            if self.pacer is not None and ticket is not None:
                self.pacer.sent(ticket, sent.written_at)
        metrics.observe_dial(account.provider, str(sent.result.verdict), sent.latency_ms, start.due_at, now)
        done = now + timedelta(milliseconds=sent.latency_ms)
        with self.engine.begin() as conn:
            self._record(conn, job, start, account, sent.result, sent.latency_ms, done)
        if self.pacer is not None:
            self.pacer.after(account, job.to_number, gate, sent.result)
        log.info("dialed", extra={**extra, "verdict": sent.result.verdict, "http_status": sent.result.http_status})
        return str(sent.result.verdict)

    def _paced(self, account: Account, campaign_id: int | None, calls_per_minute: int | None) -> bool:
        """Whether any cluster-wide limit applies to this call (then the pacer must admit it)."""
        if self.pacer is None:
            return False
        return bool(
            self.settings.per_number_daily_attempts
            or account.limits.max_concurrent
            or self.pacer.rates(account, campaign_id, calls_per_minute)
        )

    def _hold(self, conn: Connection, job: AnyRow, now: datetime) -> str | int | None:
        """Reasons not to dial right now, each moving the job on from ``queued``;
        otherwise the campaign's calls-per-minute limit (None: no limit)."""
        if job.do_not_call:  # read with the job (job_store.job_to_dispatch)
            job_store.set_state(conn, job.id, JobState.QUEUED, JobState.SUPPRESSED, now, reason="do_not_call")
            return "suppressed"
        calls_per_minute: int | None = None
        if job.campaign_id is not None:
            campaign = campaign_store.by_id(conn, job.campaign_id)
            state = campaign.state if campaign is not None else None
            calls_per_minute = campaign.calls_per_minute if campaign is not None else None
            if state == CampaignState.CANCELLED:
                job_store.set_state(conn, job.id, JobState.QUEUED, JobState.CANCELLED, now, reason="cancelled")
                return "cancelled"
            if state == CampaignState.PAUSED:
                job_store.set_state(conn, job.id, JobState.QUEUED, JobState.SCHEDULED, now)
                return "paused"
        if job.window_end is not None and now < job.window_end:
            return calls_per_minute
        # Rule 7: the window may have closed while the job waited in the broker.
        step = recheck(rules_for(job.timing, job.to_number, self.settings), job.next_due_at, now)
        if isinstance(step, Closed):
            job_store.set_state(conn, job.id, JobState.QUEUED, step.outcome, now, reason=step.reason)
            return step.outcome
        if step.at > now:
            job_store.reschedule(conn, job.id, JobState.QUEUED, step.at, step.window[1], now)
            return "carried_over"
        return calls_per_minute

    def _prepare(self, conn: Connection, job: AnyRow, now: datetime) -> tuple[Account, httpx.Request] | str:
        account = self.accounts.get(job.account)
        try:
            if account is None:
                raise AccountError(f"no account named {job.account!r} in the accounts file")
            adapter = adapter_for(account.provider)
            call = CallRequest(
                job_id=job.id,
                attempt=job.attempts_used + (0 if job.transport_retries else 1),
                to_number=job.to_number,
                variables=job.variables or {},
                options=job.options or {},
                callback_url=f"{self.settings.public_url.rstrip('/')}/webhooks/{job.account}",
            )
            return account, adapter.build_request(account, call)
        except (AccountError, KeyError) as exc:
            # Nothing left: a configuration fault, reported on the job rather than dialled around.
            job_store.set_state(conn, job.id, JobState.QUEUED, JobState.REJECTED, now, reason=str(exc))
            return "rejected"

    def _record(
        self,
        conn: Connection,
        job: AnyRow,
        start: job_store.DialStart,
        account: Account,
        result: DialResult,
        latency_ms: float,
        now: datetime,
    ) -> None:
        job_store.record_response(
            conn,
            start.attempt_id,
            responded_at=now,
            latency_ms=latency_ms,
            http_status=result.http_status,
            provider_call_id=result.provider_call_id,
            result=result.verdict,
            error_code=result.error_code,
            error=result.message,
        )
        dialing = JobState.DIALING
        if result.verdict == Verdict.ACCEPTED:
            assert result.provider_call_id is not None
            job_store.set_state(
                conn,
                job.id,
                dialing,
                JobState.ACCEPTED,
                now,
                provider_call_id=result.provider_call_id,
                transport_retries=0,
            )
            replay_unmatched(conn, account.provider, account.name, result.provider_call_id, now, self.settings)
        elif result.verdict == Verdict.RETRY_SAFE:
            self._resend_later(conn, job, start, result, now)
        elif result.verdict == Verdict.UNKNOWN:
            reason = f"outcome unknown: {result.error_code}: {result.message}"
            job_store.set_state(conn, job.id, dialing, JobState.UNKNOWN, now, reason=reason)
        else:
            reason = f"{result.error_code}: {result.message}"
            job_store.set_state(conn, job.id, dialing, JobState.REJECTED, now, reason=reason)

    def _resend_later(
        self, conn: Connection, job: AnyRow, start: job_store.DialStart, result: DialResult, now: datetime
    ) -> None:
        """Transport trouble before the provider took the call: wait and resend, without using a retry."""
        settings = self.settings
        if job.transport_retries < settings.transport_max_retries:
            delay = transport_backoff(
                job.transport_retries,
                result.retry_after_s,
                settings.transport_backoff_base_s,
                settings.transport_backoff_cap_s,
            )
            job_store.set_state(
                conn,
                job.id,
                JobState.DIALING,
                JobState.SCHEDULED,
                now,
                next_due_at=now + delay,
                transport_retries=job.transport_retries + 1,
            )
            return
        # Out of patience with the transport: the attempt counts as a failed call.
        job_store.settle_attempt(conn, start.attempt_id, "failed", f"transport:{result.error_code}", now)
        rules = rules_for(job.timing, job.to_number, settings)
        step = after_outcome(rules, job.retry_on, "failed", start.number, start.due_at or now, now)
        job_store.set_state(
            conn,
            job.id,
            JobState.DIALING,
            step.state,
            now,
            next_due_at=step.due,
            window_end=step.window_end,
            last_outcome="failed",
            reason=step.reason or "transport_retries_exhausted",
            transport_retries=0,
        )
