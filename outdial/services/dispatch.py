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
from enum import StrEnum
from pathlib import Path

import httpx
from sqlalchemy import Connection, Engine

from outdial import faults, logs, metrics
from outdial.models import CampaignState, JobState
from outdial.services.outcomes import replay_waiting
from outdial.services.pacing.pacer import SLOT_BUSY, Gate, Pacer
from outdial.services.providers import adapter_for
from outdial.services.providers.accounts import Account, AccountError
from outdial.services.providers.base import CallRequest, DialResult, Verdict
from outdial.services.providers.transport import Sent, Timeouts, send
from outdial.services.retries import after_outcome, transport_backoff
from outdial.services.timing.rules import Closed, recheck
from outdial.services.timing.spec import rules_for
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import jobs as job_store
from outdial.store.db import transactions_block_writers
from outdial.vocab import Outcome

log = logging.getLogger("outdial.dispatch")


class Step(StrEnum):
    """What one dispatch did with its job."""

    MISSING = "missing"  # no such job
    SKIPPED = "skipped"  # no longer queued (detail: its state), or another worker took it (detail: raced)
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    CARRIED_OVER = "carried_over"
    EXPIRED = "expired"
    PACED = "paced"  # a limit said not now (detail: which); back to scheduled, budget untouched
    # A request left; the provider's verdict (providers.base.Verdict):
    ACCEPTED = "accepted"
    RETRY_SAFE = "retry_safe"
    UNKNOWN = "unknown"
    REJECTED = "rejected"  # also: refused before any request (configuration, no callable window)


@dataclass(frozen=True)
class Dispatched:
    """A dispatch's result. ``str()`` gives the word the Celery task returns (Flower shows it),
    e.g. ``accepted`` or ``paced:rate``."""

    step: Step
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.step.value}:{self.detail}" if self.detail else self.step.value


RACED = Dispatched(Step.SKIPPED, "raced")


@dataclass
class Dispatcher:
    engine: Engine
    settings: Settings
    accounts: dict[str, Account]
    client: httpx.Client
    pacer: Pacer | None = None  # None: no cluster-wide limits (tests, single-process tools)

    def __post_init__(self) -> None:
        # Whether Redis may be asked inside the job's first transaction (not on SQLite: see _dispatch).
        self._admit_in_transaction = not transactions_block_writers(self.engine)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(self.settings.provider_connect_timeout_s, self.settings.provider_read_timeout_s)

    def dispatch(self, job_id: int, now: datetime | None = None) -> Dispatched:
        """Place job ``job_id`` if it is still queued and callable; what happened.

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
            log.error("dispatch failed; job rejected", extra=logs.fields(job_id=job_id, reason=reason))
            with self.engine.begin() as conn:
                for state in (JobState.QUEUED, JobState.DIALING):
                    if job_store.reject(conn, job_id, state, datetime.now(UTC), reason, reason=reason):
                        break
            return Dispatched(Step.REJECTED, "internal error")

    def _dispatch(self, job_id: int, now: datetime) -> Dispatched:
        began = now
        started = time.monotonic()

        def clock() -> datetime:  # this dispatch's "now", moved on by the time it has taken
            return began + timedelta(seconds=time.monotonic() - started)

        with self.engine.begin() as conn:
            job = job_store.job_to_dispatch(conn, job_id)
            if job is None:
                return Dispatched(Step.MISSING)
            logs.bind(job_id=job_id, campaign_id=job.campaign_id, account=job.account)
            if job.state != JobState.QUEUED:
                return Dispatched(Step.SKIPPED, job.state)
            held = self._hold(conn, job, now)
            if isinstance(held, Dispatched):
                return held
            prepared = self._prepare(conn, job, now)
            if isinstance(prepared, Dispatched):
                return prepared
            account, request = prepared
            attempt = job.attempts_used + (0 if job.transport_retries else 1)
            paced = self._paced(account, job.campaign_id, held)
            gate: Gate | None = Gate(True)
            if paced and not self._admit_in_transaction:
                gate = None  # SQLite: Redis is not asked while this transaction holds the write lock
            elif paced:
                assert self.pacer is not None
                # Asked without waiting, inside this transaction: when no limit makes the call wait
                # (the usual case), ``queued -> dialing`` commits with the checks, in one transaction.
                gate = self.pacer.admit(
                    account, job.id, attempt, job.to_number, now, job.campaign_id, held, patient=False
                )
                if gate.reason == SLOT_BUSY:
                    gate = None  # no slot free at once: wait for one below, outside the transaction
                elif not gate.open:
                    return self._paced_back(conn, job, account, gate, now)
            begun: tuple[job_store.DialStart | None, datetime] | Dispatched | None = None
            if gate is not None and not gate.start_in_s:
                if paced:
                    faults.reached(faults.Point.BEFORE_BEGIN_DIAL, job.id)  # chaos suite only (outdial.faults)
                now = clock()
                begun = self._begin(conn, job, account.provider, now)
        if begun is None:
            # A limit made the call wait: no database connection is held meanwhile.
            assert self.pacer is not None
            if gate is None:
                gate = self.pacer.admit(account, job.id, attempt, job.to_number, now, job.campaign_id, held)
                if not gate.open:
                    with self.engine.begin() as conn:
                        return self._paced_back(conn, job, account, gate, now)
            else:
                time.sleep(gate.start_in_s)  # our reserved turn of the rate: wait for it, then dial at once
            faults.reached(faults.Point.BEFORE_BEGIN_DIAL, job.id)
            # Time spent waiting for a turn counts: the request is stamped when it leaves.
            now = clock()
            with self.engine.begin() as conn:
                begun = self._begin(conn, job, account.provider, now)
        assert gate is not None
        start, open_until = (None, now) if isinstance(begun, Dispatched) else begun
        if start is None:
            if self.pacer is not None:
                self.pacer.withdraw(account, job.to_number, gate)
            return begun if isinstance(begun, Dispatched) else RACED
        extra = {
            "job_id": job_id,
            "campaign_id": job.campaign_id,
            "attempt": start.number,
            "attempt_id": start.attempt_id,
            "account": account.name,
        }
        log.info("dialing", extra=logs.fields(**extra))
        # The wait for room to send ends with the window (rule 7): the request leaves inside it or not at all.
        room_s = (open_until - clock()).total_seconds()
        ticket = None
        if self.pacer is not None and room_s > 0:
            ticket = self.pacer.clear_to_send(account, str(start.attempt_id), min(5.0, room_s), gate.ticket)
        elif self.pacer is not None and gate.ticket is not None:
            self.pacer.sent(gate.ticket, None)  # not sent after all: the room taken at admission goes back
        if room_s <= 0 or (self.pacer is not None and ticket is None):
            # Nothing left: the job waits for a later turn like any transport trouble, budget untouched;
            # the scheduler's own rule-7 check then carries it over or expires it.
            code, why = ("window_closed", "the window closed first") if room_s <= 0 else ("pacing_wait", "no room")
            sent = Sent(DialResult(Verdict.RETRY_SAFE, error_code=code, message=f"not sent: {why}"), 0.0)
        else:
            sent = send(self.client, adapter_for(account.provider), request, self.timeouts)
            if self.pacer is not None and ticket is not None:
                self.pacer.sent(ticket, sent.written_at)
        metrics.observe_dial(account.provider, str(sent.result.verdict), sent.latency_ms, start.due_at, now)
        done = now + timedelta(milliseconds=sent.latency_ms)
        with self.engine.begin() as conn:
            # The attempt's time becomes the moment the request was written, the one rule 7 is about.
            written = None if sent.written_at is None else began + timedelta(seconds=sent.written_at - started)
            waiting = self._record(conn, job, start, account, sent.result, sent.latency_ms, done, written)
        if waiting:
            # After the commit, so the call's lock is never taken while the answer holds its rows.
            call_id = sent.result.provider_call_id
            assert call_id is not None
            replay_waiting(self.engine, account.provider, account.name, call_id, done, self.settings)
        if self.pacer is not None:
            self.pacer.after(account, job.to_number, gate, sent.result)
        log.info("dialed", extra=logs.fields(**extra, verdict=sent.result.verdict, http_status=sent.result.http_status))
        return Dispatched(Step(sent.result.verdict.value))

    def _paced_back(self, conn: Connection, job: AnyRow, account: Account, gate: Gate, now: datetime) -> Dispatched:
        """A limit said not now: back to scheduled for when it says, the attempt's budget untouched."""
        metrics.observe_pacing_wait(account.name)
        job_store.postpone(conn, job.id, now, f"paced: {gate.reason}", next_due_at=gate.retry_at)
        return Dispatched(Step.PACED, gate.reason)

    def _paced(self, account: Account, campaign_id: int | None, calls_per_minute: int | None) -> bool:
        """Whether any cluster-wide limit applies to this call (then the pacer must admit it)."""
        if self.pacer is None:
            return False
        return bool(
            self.settings.per_number_daily_attempts
            or account.limits.max_concurrent
            or self.pacer.rates(account, campaign_id, calls_per_minute)
        )

    def _hold(self, conn: Connection, job: AnyRow, now: datetime) -> Dispatched | int | None:
        """Reasons not to dial right now, each moving the job on from ``queued``;
        otherwise the campaign's calls-per-minute limit (None: no limit)."""
        if job.do_not_call:  # read with the job (job_store.job_to_dispatch)
            job_store.suppress(conn, job.id, now)
            return Dispatched(Step.SUPPRESSED)
        # The campaign's state and limit are read with the job (job_store.job_to_dispatch).
        calls_per_minute: int | None = job.campaign_calls_per_minute
        if job.campaign_state == CampaignState.CANCELLED:
            job_store.cancel(conn, job.id, JobState.QUEUED, now)
            return Dispatched(Step.CANCELLED)
        if job.campaign_state == CampaignState.PAUSED:
            job_store.postpone(conn, job.id, now, "campaign paused")
            return Dispatched(Step.PAUSED)
        open_until = self._open_until(conn, job, now)
        return open_until if isinstance(open_until, Dispatched) else calls_per_minute

    def _open_until(self, conn: Connection, job: AnyRow, now: datetime) -> datetime | Dispatched:
        """Rule 7 at ``now``: when the job's open window closes; if it has closed, it carries over or expires."""
        if job.window_end is not None and now < job.window_end:
            return job.window_end  # type: ignore[no-any-return]
        # The window may have closed while the job waited in the broker, or for its pacing turn.
        step = recheck(rules_for(job.timing, job.to_number, self.settings), job.next_due_at, now)
        if isinstance(step, Closed):
            job_store.settle(conn, job.id, JobState.QUEUED, JobState(step.outcome), now, step.reason)
            return Dispatched(Step(step.outcome))
        if step.at > now:
            why = "window closed: carried over"
            job_store.postpone(conn, job.id, now, why, next_due_at=step.at, window_end=step.window[1])
            return Dispatched(Step.CARRIED_OVER)
        return step.window[1]

    def _begin(
        self, conn: Connection, job: AnyRow, provider: str, now: datetime
    ) -> tuple[job_store.DialStart | None, datetime] | Dispatched:
        """``queued -> dialing`` stamped ``now``, if the window is still open then; and when it closes.

        :meth:`_hold` checked before the pacing wait and the database round trips;
        under load those take seconds, enough for a window to close in between.
        """
        open_until = self._open_until(conn, job, now)
        if isinstance(open_until, Dispatched):
            return open_until
        return job_store.begin_dial(conn, job, provider, now), open_until

    def _prepare(self, conn: Connection, job: AnyRow, now: datetime) -> tuple[Account, httpx.Request] | Dispatched:
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
                # Only a priority the user gave is passed on (a provider's own default stands otherwise).
                priority=(job.timing or {}).get("priority"),
            )
            return account, adapter.build_request(account, call)
        except (AccountError, KeyError) as exc:
            # Nothing left: a configuration fault, reported on the job rather than dialled around.
            job_store.reject(conn, job.id, JobState.QUEUED, now, str(exc), reason=str(exc))
            return Dispatched(Step.REJECTED)

    def _record(
        self,
        conn: Connection,
        job: AnyRow,
        start: job_store.DialStart,
        account: Account,
        result: DialResult,
        latency_ms: float,
        now: datetime,
        written: datetime | None = None,
    ) -> bool:
        """Record the provider's answer; whether events already wait for the call it accepted.

        No call lock here (``events.lock_call``): a webhook that commits while this transaction
        runs may find neither the call id nor be found by the answer's read of waiting events,
        and the scheduler's sweep applies it at its next tick (``outcomes.apply_late_matches``).
        That rare wait costs less than one more statement in every accepted dispatch."""
        response = {
            **({} if written is None else {"requested_at": written}),
            "responded_at": now,
            "latency_ms": latency_ms,
            "http_status": result.http_status,
            "provider_call_id": result.provider_call_id,
            "result": result.verdict,
            "error_code": result.error_code,
            "error": result.message,
        }
        dialing = JobState.DIALING
        if result.verdict == Verdict.ACCEPTED:
            call_id = result.provider_call_id
            assert call_id is not None
            answered = job_store.accept_answer(
                conn, job.id, start.attempt_id, call_id, now, account.provider, account.name, **response
            )
            if not answered.moved:
                # The dialing lease gave up on this worker and declared the call unknown: it stays
                # unknown (never redialled), but now names its call, so the outcome settles it.
                job_store.record_call(conn, job.id, call_id, now)
            return bool(answered.waiting)
        job_store.record_response(conn, start.attempt_id, **response)
        if result.verdict == Verdict.RETRY_SAFE:
            self._resend_later(conn, job, start, result, now)
        elif result.verdict == Verdict.UNKNOWN:
            reason = f"outcome unknown: {result.error_code}: {result.message}"
            job_store.mark_unknown(conn, job.id, dialing, now, reason)
        else:
            reason = f"{result.error_code}: {result.message}"
            job_store.reject(conn, job.id, dialing, now, reason, reason=reason)
        return False

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
            job_store.schedule_retry(
                conn,
                job.id,
                JobState.DIALING,
                now,
                f"transport: {result.error_code}: resend {job.transport_retries + 1}",
                next_due_at=now + delay,
                transport_retries=job.transport_retries + 1,
            )
            return
        # Out of patience with the transport: the attempt counts as a failed call.
        job_store.settle_attempt(conn, start.attempt_id, Outcome.FAILED, f"transport:{result.error_code}", now)
        rules = rules_for(job.timing, job.to_number, settings)
        step = after_outcome(rules, job.retry_on, Outcome.FAILED, start.number, start.due_at or now, now)
        job_store.settle(
            conn,
            job.id,
            JobState.DIALING,
            JobState(step.state),
            now,
            step.reason or "transport_retries_exhausted",
            next_due_at=step.due,
            window_end=step.window_end,
            last_outcome=Outcome.FAILED,
            transport_retries=0,
        )
