"""The scheduler: claims due jobs from the database and hands their ids to Celery.

The database owns time. A job reaches the broker only once it is due, as a
task carrying its id and nothing else; ``scheduled -> queued`` is committed
first and is conditional, so two schedulers never enqueue the same job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import Connection, Engine

from outdial import logs, metrics
from outdial.models import JobState
from outdial.scheduler.leader import Leadership
from outdial.scheduler.poller import StatusPoller
from outdial.services import campaigns
from outdial.services.breaker import BreakerCheck
from outdial.services.intake.uploads import Upload, sweep_lost
from outdial.services.outcomes import apply_late_matches
from outdial.services.pacing.limits import account_key
from outdial.services.pacing.pacer import CampaignTurns, Pacer, RecentSends, queue_budget, send_lease_s, sync_slots
from outdial.services.providers.accounts import Account
from outdial.services.rounds import Rounds
from outdial.services.shown import dispatch_repr
from outdial.services.timing.rules import Closed, recheck
from outdial.services.timing.spec import rules_for
from outdial.settings import Settings
from outdial.store import AnyRow
from outdial.store import attempts as attempts_store
from outdial.store import jobs as job_store

log = logging.getLogger("outdial.scheduler")
# Requests stamped by hosts whose clocks run up to this far behind still count after a Redis loss.
RECENT_SENDS_MARGIN_S = 2.0


class ClaimedJob(int):
    """A job id to send, which also carries what a Celery monitor should show for its task.

    An ``int``, so a sender that only needs the id (``args=[job]``, a test's
    ``list.append``) takes it as one.
    """

    argsrepr: str

    @classmethod
    def of(cls, row: AnyRow) -> ClaimedJob:
        job = cls(row.id)
        attempt = row.attempts_used + (0 if row.transport_retries else 1)
        job.argsrepr = dispatch_repr(row.id, row.campaign, row.account, attempt, row.to_number)
        return job


SendJob = Callable[[ClaimedJob], None]
# Sends ``outdial.run_import`` for an uploaded lead list whose task was lost.
SendImport = Callable[[Upload], None]
# How often campaigns whose every job has ended are marked completed (and completed ones
# with work again reopened): a status, so a few seconds late is fine, and the pass is one UPDATE.
COMPLETION_CHECK = timedelta(seconds=10)


@dataclass
class TickReport:
    enqueued: list[int] = field(default_factory=list)
    carried_over: int = 0
    closed: int = 0
    resent: int = 0
    lost: int = 0
    polled: int = 0
    round_jobs: int = 0
    late_matches: int = 0
    imports_resent: int = 0
    imports_lost: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.enqueued or self.carried_over or self.closed)


@dataclass
class Scheduler:
    engine: Engine
    settings: Settings
    send_job: SendJob
    poller: StatusPoller | None = None
    last_poll: datetime | None = None
    breakers: BreakerCheck | None = None
    last_breaker_check: datetime | None = None
    rounds: Rounds | None = None
    # With accounts, due jobs are claimed within each account's pacing budget; with a
    # pacer, Redis's concurrency slots are kept in step with the calls in progress.
    accounts: Mapping[str, Account] | None = None
    pacer: Pacer | None = None
    last_completion_check: datetime | None = None
    # With a pacer, a campaign's jobs are sent no faster than its calls per minute (the
    # worker's gate would hand earlier ones back); see CampaignTurns.
    turns: CampaignTurns | None = None
    # With a sender, uploaded lead lists whose task was lost are sent again, then failed.
    send_import: SendImport | None = None

    def __post_init__(self) -> None:
        if self.turns is None and self.pacer is not None:
            s = self.settings
            # A job is sent when its turn is within most of the gate's wait: the rest is slack
            # for the broker and the worker picking it up.
            self.turns = CampaignTurns(horizon_s=0.8 * s.pacing_max_wait_s, margin=s.pacing_rate_margin)

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or datetime.now(UTC)
        report = TickReport()
        if self.rounds is not None:
            report.round_jobs = self.rounds.start_due(now)
        # Slots of ended calls are freed before claiming, so the budgets and Redis agree.
        self.sync_slots(now)
        with self.engine.begin() as conn:
            ready: dict[int, AnyRow] = {}
            budgets = self._budgets(conn, now)
            rates = job_store.campaign_rates(conn) if self.turns is not None else {}
            per_campaign = self._campaign_budgets(rates, now)
            for job in job_store.due_jobs(conn, now, self.settings.scheduler_batch, budgets, per_campaign):
                if budgets.get(job.account, 1) <= 0 or per_campaign.get(job.campaign_id, 1) <= 0:
                    continue  # the account or campaign is at its limits: the job waits, scheduled
                if job.account in budgets:
                    budgets[job.account] -= 1
                if job.campaign_id in per_campaign:
                    per_campaign[job.campaign_id] -= 1
                if job.window_end is not None and now < job.window_end:
                    ready[job.id] = job
                    continue
                # Rule 7: claimed late, after its window closed: carry over or expire.
                step = recheck(rules_for(job.timing, job.to_number, self.settings), job.next_due_at, now)
                if isinstance(step, Closed):
                    job_store.settle(conn, job.id, JobState.SCHEDULED, JobState(step.outcome), now, step.reason)
                    report.closed += 1
                elif step.at > now:
                    job_store.carry_over(conn, job.id, step.at, step.window[1], now)
                    report.carried_over += 1
                else:
                    job_store.note_window(conn, job.id, step.window[1])
                    ready[job.id] = job
            moved = set(job_store.claim(conn, list(ready), now))
        # Sent only after the commit: a worker must find the job queued. A crash in
        # between leaves it queued, and the queued lease below sends it again.
        for job_id, job in ready.items():
            if job_id in moved:
                self.send_job(ClaimedJob.of(job))
                report.enqueued.append(job_id)
                self._took_turn(rates, job.campaign_id, now)
        self.reconcile(now, report)
        self.reconcile_imports(now, report)
        report.late_matches = apply_late_matches(self.engine, now, self.settings)
        if self.poller is not None and (
            self.last_poll is None or now - self.last_poll >= timedelta(seconds=self.settings.poll_interval_s)
        ):
            self.last_poll = now
            report.polled = self.poller.poll(now)
        if self.breakers is not None and (
            self.last_breaker_check is None
            or now - self.last_breaker_check >= timedelta(seconds=self.settings.breaker_check_interval_s)
        ):
            self.last_breaker_check = now
            self.breakers.check(now)
        if self.last_completion_check is None or now - self.last_completion_check >= COMPLETION_CHECK:
            self.last_completion_check = now
            completed, reopened = campaigns.settle_completion(self.engine, now)
            for name in completed:
                log.info("campaign completed: every job has ended", extra=logs.fields(campaign=name))
            for name in reopened:
                log.info("campaign active again: it has jobs to dial", extra=logs.fields(campaign=name))
        return report

    def _budgets(self, conn: Connection, now: datetime) -> dict[str, int]:
        if not self.accounts:
            return {}
        counts = job_store.in_flight_by_account(conn, now - timedelta(seconds=self.settings.slot_lease_s))
        budgets = {}
        for name, account in self.accounts.items():
            budget = queue_budget(account, *counts.get(name, (0, 0)), self.settings)
            if budget is not None:
                budgets[name] = 0 if self._paused(account) else budget
        return budgets

    def _paused(self, account: Account) -> bool:
        """Whether the account's provider asked for quiet (a 429): every dispatch now would be handed back."""
        if self.pacer is None or not account.limits.calls_per_second:
            return False
        try:
            return self.pacer.limiter.paused_for(account_key(account.name)) > 0
        except RedisError:
            return False  # the gate decides, as without the pause

    def _campaign_budgets(self, rates: Mapping[int, int], now: datetime) -> dict[int, int]:
        if self.turns is None:
            return {}
        self.turns.forget_others(rates.keys())
        return {cid: self.turns.budget(cid, cpm, now) for cid, cpm in rates.items()}

    def _took_turn(self, rates: Mapping[int, int], campaign_id: int | None, now: datetime) -> None:
        if self.turns is not None and campaign_id in rates:
            assert campaign_id is not None
            self.turns.took(campaign_id, rates[campaign_id], 1, now)

    def sync_slots(self, now: datetime) -> None:
        if self.pacer is None or not self.accounts:
            return
        with self.engine.connect() as conn:
            live, pending = job_store.live_calls(conn, now - timedelta(seconds=self.settings.slot_lease_s))
        s = self.settings
        send_lease = send_lease_s(s)
        try:
            sync_slots(
                self.pacer.slots, self.accounts, live, pending, s.slot_lease_s, s.slot_grace_s,
                sends=self.pacer.sends, recent=lambda: self.recent_sends(now, send_lease), send_lease=send_lease,
            )  # fmt: skip
        except RedisError as exc:
            log.warning("could not sync concurrency slots: %s", exc)

    def recent_sends(self, now: datetime, send_lease: float) -> dict[str, RecentSends]:
        """The requests that may still count in each account's send window, read after Redis lost it.
        The margin covers clocks of other hosts a little behind this one."""
        margin = timedelta(seconds=RECENT_SENDS_MARGIN_S)
        with self.engine.connect() as conn:
            found = attempts_store.recent_requests_by_account(
                conn, now - timedelta(seconds=send_lease) - margin, now - timedelta(seconds=1) - margin
            )
        return {name: RecentSends(in_flight, answered) for name, (in_flight, answered) in found.items()}

    def reconcile(self, now: datetime, report: TickReport) -> None:
        """Move on jobs stuck in flight: lost messages, dead workers, outcomes that never came."""
        s = self.settings
        with self.engine.begin() as conn:
            stale_queued = job_store.stale_jobs(
                conn, JobState.QUEUED, now - timedelta(seconds=s.queued_lease_s), s.scheduler_batch
            )
            resend = [j for j in stale_queued if job_store.resend(conn, j.id, j.state_changed_at, now)]
            # In ``dialing`` the request may have left: never redial blindly.
            lost_dialing = sum(
                job_store.mark_unknown(conn, job.id, JobState.DIALING, now, "worker lost during the request")
                for job in job_store.stale_jobs(
                    conn, JobState.DIALING, now - timedelta(seconds=s.dialing_lease_s), s.scheduler_batch
                )
            )
            lost_accepted = sum(
                job_store.mark_unknown(conn, job.id, JobState.ACCEPTED, now, "no outcome reported in time")
                for job in job_store.stale_jobs(
                    conn, JobState.ACCEPTED, now - timedelta(seconds=s.accepted_lease_s), s.scheduler_batch
                )
            )
        # Counted once committed: OutdialUnknownRateHigh adds them to the requests that ended unknown.
        metrics.observe_lease_unknowns("dialing", lost_dialing)
        metrics.observe_lease_unknowns("accepted", lost_accepted)
        report.lost += lost_dialing + lost_accepted
        for job in resend:
            self.send_job(ClaimedJob.of(job))
            report.resent += 1

    def reconcile_imports(self, now: datetime, report: TickReport) -> None:
        """Send again the tasks of uploaded lead lists that were lost (or whose worker died),
        and end those lost too often: an upload never waits forever. Every tick, as the leases:
        the sweep reads only imports not ended, through their index."""
        if self.send_import is None:
            return
        swept = sweep_lost(self.engine, self.settings, now, self.settings.scheduler_batch)
        for import_id in swept.failed:
            log.warning("import failed: its task was lost too often", extra=logs.fields(import_id=import_id))
        report.imports_lost += len(swept.failed)
        for upload in swept.resend:
            log.warning(
                "import task lost: sent again",
                extra=logs.fields(import_id=upload.import_id, campaign=upload.campaign),
            )
            self.send_import(upload)
            report.imports_resent += 1

    def run(self, stop: Callable[[], bool], leadership: Leadership | None = None) -> None:
        log.info("scheduler started")
        while not stop():
            if leadership is not None and not leadership.hold():
                time.sleep(self.settings.scheduler_interval_s)
                continue
            try:
                report = self.tick()
            except Exception:  # a database or broker hiccup must not end the loop
                log.exception("scheduler tick failed")
                time.sleep(self.settings.scheduler_interval_s)
                continue
            if report.enqueued:
                log.info("enqueued %d jobs", len(report.enqueued))
            if len(report.enqueued) < self.settings.scheduler_batch:
                time.sleep(self.settings.scheduler_interval_s)
        if leadership is not None:
            leadership.release()
