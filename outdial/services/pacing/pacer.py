"""What a dispatch must get through before it dials, and the bookkeeping after.

The limits themselves are Redis scripts (:mod:`outdial.services.pacing.limits`); this module
decides which apply to a call, in which order, and how each is given back
when the call does not go out. The order is cheapest-to-undo last: the
per-number day count, then a concurrency slot, then a turn of the rate.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import redis
from redis.exceptions import RedisError

from outdial import logs
from outdial.services.pacing.limits import (
    Admissions,
    Admitted,
    ConcurrencySlots,
    DailyAttempts,
    DailyCap,
    Rate,
    RateLimiter,
    Send,
    SendWindow,
    Slot,
    account_key,
    campaign_key,
)
from outdial.services.providers.accounts import Account
from outdial.services.providers.base import DialResult, Verdict
from outdial.services.timing.spec import callee_zones, zone
from outdial.settings import Settings

log = logging.getLogger("outdial.pacing")

# How often a dispatch waiting for a concurrency slot asks again.
SLOT_POLL_S = 0.1


@dataclass(frozen=True)
class SendTicket:
    """A send let through the hard cap: its id, and Redis's and this process's clocks at that moment."""

    send_id: str
    key: str | None  # None: the account has no calls-per-second limit
    redis_us: int
    monotonic: float


@dataclass(frozen=True)
class Gate:
    """The pacing verdict for one dial; a closed gate says when to try again."""

    open: bool
    retry_at: datetime | None = None
    reason: str | None = None
    holder: str | None = None  # the concurrency slot taken, if any
    day: date | None = None  # the callee-local day counted, if any
    # An impatient admission (``admit(..., patient=False)``): the reserved turn of the rate is this
    # far ahead, for the caller to wait out before it dials.
    start_in_s: float = 0.0
    ticket: SendTicket | None = None  # room in the send window, taken with the turn


# An impatient admission found no free slot at once and took nothing: ask again, patiently.
SLOT_BUSY = "slot_busy"


def holder_name(job_id: int, attempt: int) -> str:
    return f"{job_id}:{attempt}"


def callee_day(number: str, now: datetime, settings: Settings) -> tuple[date, datetime]:
    """The callee's local date now, and when that day ends (UTC)."""
    zones = callee_zones(number) or (zone(settings.default_timezone),)
    local = now.astimezone(zones[0])
    tomorrow = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zones[0])
    return local.date(), tomorrow.astimezone(UTC)


class Pacer:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.settings = settings
        prefix = settings.pacing_prefix
        self.limiter = RateLimiter(client, prefix)
        self.slots = ConcurrencySlots(client, prefix, require_seeded=True)
        self.daily = DailyAttempts(client, prefix)
        self.sends = SendWindow(client, prefix, require_seeded=True)
        self.admissions = Admissions(client, prefix)
        self.client = client

    def rates(self, account: Account, campaign_id: int | None, calls_per_minute: int | None) -> list[Rate]:
        rates = []
        if account.limits.calls_per_second:
            per_second = account.limits.calls_per_second * self.settings.pacing_rate_margin
            rates.append(Rate(account_key(account.name), per_second, self.settings.rate_burst))
        if campaign_id is not None and calls_per_minute:
            rates.append(
                Rate.per_minute(campaign_key(campaign_id), calls_per_minute * self.settings.pacing_rate_margin)
            )
        return rates

    def admit(
        self,
        account: Account,
        job_id: int,
        attempt: int,
        to_number: str,
        now: datetime,
        campaign_id: int | None = None,
        calls_per_minute: int | None = None,
        patient: bool = True,
    ) -> Gate:
        """Take every limit that applies, or none, in one round trip (:class:`Admissions`).

        Not ``patient``, it never sleeps, so a caller may ask while it holds a database
        transaction: a slot that is not free at once closes the gate with :data:`SLOT_BUSY`
        (ask again patiently), and a reserved turn later than now is left in ``start_in_s``.
        A turn that is now also takes the send window's room when there is some
        (``Gate.ticket``), so :meth:`clear_to_send` need not ask Redis again.
        """
        s, limits = self.settings, account.limits
        daily: DailyCap | None = None
        day_ends = now
        if s.per_number_daily_attempts:
            day, day_ends = callee_day(to_number, now, s)
            daily = DailyCap(to_number, day, s.per_number_daily_attempts)
        holder = holder_name(job_id, attempt)
        slot = Slot(account.name, holder, limits.max_concurrent, s.slot_lease_s) if limits.max_concurrent else None
        send = None
        if limits.calls_per_second:
            # Unique per admission: a redelivered task's give-back must not remove the first one's entry.
            send_id = f"{holder}:{secrets.token_hex(4)}"
            send = Send(account_key(account.name), math.floor(limits.calls_per_second), send_id, send_lease_s(s))
        rates = self.rates(account, campaign_id, calls_per_minute)
        deadline = time.monotonic() + s.pacing_max_wait_s
        try:
            while True:
                admission = self.admissions.admit(daily, slot, rates, s.pacing_max_wait_s, send)
                if admission.outcome != Admitted.SLOT_BUSY:
                    break
                # The scheduler queues a job only when the database shows a slot free; Redis frees an
                # ended call's slot at the scheduler's next tick, so a short wait finds it.
                if not patient:
                    return Gate(False, None, SLOT_BUSY)
                if time.monotonic() + SLOT_POLL_S > deadline:
                    return Gate(False, now + timedelta(seconds=random.uniform(0.5, 1.5)), "concurrency")
                time.sleep(SLOT_POLL_S)
        except RedisError as exc:
            # Without the limits we may not dial; the job waits and tries again. Whatever the script
            # may have taken is the holder's slot (released by name) or one day count (left: fewer calls).
            log.warning("pacing unavailable: %s", exc, extra=logs.fields(job_id=job_id, account=account.name))
            self._give_back(account, to_number, None, holder if slot else None, quietly=True)
            return Gate(False, now + timedelta(seconds=2), "pacing_unavailable")
        if admission.outcome == Admitted.DAILY_CAP:
            return Gate(False, day_ends, "daily_attempt_cap")
        if admission.outcome == Admitted.RATE:
            return Gate(False, now + timedelta(seconds=admission.wait_s), "rate")
        ticket = None
        if send is not None and admission.send_taken:
            ticket = SendTicket(send.send_id, send.key, admission.redis_us, time.monotonic())
        held, counted = (holder if slot else None), (daily.local_date if daily else None)
        if admission.wait_s > 0:
            if not patient:
                return Gate(True, holder=held, day=counted, start_in_s=admission.wait_s)
            time.sleep(admission.wait_s)  # our reserved turn: wait for it, then dial at once
        return Gate(True, holder=held, day=counted, ticket=ticket)

    def clear_to_send(
        self, account: Account, send_id: str, max_wait_s: float = 5.0, taken: SendTicket | None = None
    ) -> SendTicket | None:
        """Wait until the account's last second of sends has room for this one; None if it never did.

        The hard cap behind the smooth GCRA turns: at most ``calls_per_second``
        requests reach the provider in any one second (see :class:`SendWindow`).
        Room ``taken`` at admission is used as it is. Report what became of the
        request with :meth:`sent`.
        """
        if taken is not None:
            return taken
        limit = account.limits.calls_per_second
        if not limit:
            return SendTicket(send_id, None, 0, 0.0)
        key = account_key(account.name)
        deadline = time.monotonic() + max_wait_s
        lease = send_lease_s(self.settings)
        try:
            while True:
                wait, redis_now_us = self.sends.try_send(key, math.floor(limit), send_id, lease_s=lease)
                if not wait:
                    return SendTicket(send_id, key, redis_now_us, time.monotonic())
                if time.monotonic() + wait > deadline:
                    return None
                time.sleep(wait)
        except RedisError as exc:
            log.warning("pacing unavailable at send time: %s", exc, extra=logs.fields(account=account.name))
            return None

    def sent(self, ticket: SendTicket, written_at: float | None) -> None:
        """Count the request from the moment it was written, or not at all if it never was."""
        if ticket.key is None:
            return
        try:
            if written_at is None:
                self.sends.forget(ticket.key, ticket.send_id)
            else:
                guard = self.settings.pacing_send_guard_s
                at_us = ticket.redis_us + round((written_at - ticket.monotonic + guard) * 1_000_000)
                self.sends.written(ticket.key, ticket.send_id, at_us)
        except RedisError as exc:  # the entry's lease still bounds it
            log.warning("pacing bookkeeping failed: %s", exc)

    def withdraw(self, account: Account, to_number: str, gate: Gate) -> None:
        """The call will not be placed after all: give back all the admission took."""
        if gate.ticket is not None:
            self.sent(gate.ticket, None)
        self.after(account, to_number, gate, DialResult(Verdict.RETRY_SAFE))

    def after(self, account: Account, to_number: str, gate: Gate, result: DialResult) -> None:
        """Give back what a request that placed no call took; keep it while a call may be live."""
        try:
            if result.verdict in (Verdict.RETRY_SAFE, Verdict.REJECTED):
                self._give_back(account, to_number, gate.day, gate.holder)
            if result.http_status == 429:
                wait = result.retry_after_s if result.retry_after_s is not None else 1.0
                self.limiter.slow_down(account_key(account.name), wait)
        except RedisError as exc:
            log.warning("pacing bookkeeping failed: %s", exc, extra=logs.fields(account=account.name))

    def _give_back(
        self, account: Account, to_number: str, day: date | None, holder: str | None, quietly: bool = False
    ) -> None:
        try:
            if holder is not None:
                self.slots.release(account.name, holder)
            if day is not None:
                self.daily.undo(to_number, day)
        except RedisError:
            if not quietly:
                raise


def send_lease_s(settings: Settings) -> float:
    """How long a request let through may take to reach the provider: its connect and read time-outs."""
    return settings.provider_connect_timeout_s + settings.provider_read_timeout_s


@dataclass(frozen=True)
class RecentSends:
    """One account's requests in the database that may still count in its send window."""

    in_flight: int = 0  # requested within a send lease, no answer yet
    answered: int = 0  # answered within the last window


def queue_budget(account: Account, queued: int, in_flight: int, settings: Settings) -> int | None:
    """How many more of an account's due jobs the scheduler should queue now; None: no limit.

    Soft: the dispatcher's gate is what holds the limits. This only keeps the
    broker from filling with calls that would be handed back.
    """
    budgets = []
    if account.limits.max_concurrent:
        budgets.append(account.limits.max_concurrent - queued - in_flight)
    if account.limits.calls_per_second:
        # No further ahead than a dispatch waits for its turn: a job queued beyond that is handed back.
        ahead = min(settings.pacing_queue_ahead_s, 0.8 * settings.pacing_max_wait_s)
        budgets.append(math.ceil(account.limits.calls_per_second * ahead) - queued)
    return max(0, min(budgets)) if budgets else None


def sync_slots(
    slots: ConcurrencySlots,
    accounts: Mapping[str, Account],
    live: Mapping[str, Set[str]],
    pending: Mapping[str, Set[str]],
    lease_s: float,
    grace_s: float = 10.0,
    sends: SendWindow | None = None,
    recent: Callable[[], Mapping[str, RecentSends]] | None = None,
    send_lease: float = 20.0,
) -> int:
    """Make Redis's slots match the calls the database shows in progress; slots released.

    Seeds them after Redis lost its data (with ``sends``, the send windows too,
    from ``recent``), and frees at once the slot of every call whose outcome has
    been recorded (the API that records outcomes needs no Redis). A slot of a
    job still ``queued`` is kept for ``grace_s``: its dispatch takes the slot
    before it writes ``dialing``.
    """
    limited = [name for name, a in accounts.items() if a.limits.max_concurrent]
    if slots.needs_seed():
        if sends is not None and recent is not None:
            found = recent()  # read from the database only now, when Redis lost its state
            for name, account in accounts.items():
                rate, seen = account.limits.calls_per_second, found.get(name)
                if rate and seen is not None:
                    sends.seed(account_key(name), seen.in_flight, seen.answered, math.floor(rate), send_lease)
        # Last: this sets the marker that lets slots and sends be taken again.
        slots.seed({name: live.get(name, set()) for name in limited}, lease_s)
        return 0
    now_s = slots.clock_s()
    released = 0
    for name in limited:
        in_progress, about_to_dial = live.get(name, set()), pending.get(name, set())
        for holder, expires_s in slots.holders(name).items():
            if holder in in_progress:
                continue
            if holder in about_to_dial and now_s - (expires_s - lease_s) <= grace_s:
                continue
            released += slots.release(name, holder)
    return released


@dataclass
class CampaignTurns:
    """The scheduler's copy of each campaign's calls-per-minute turns, so it sends no job early.

    The worker's gate books a campaign's next turn in Redis and waits for it up
    to ``pacing_max_wait_s``; a job whose turn is further off is handed back.
    Sending a campaign's due jobs all at once would hand back nearly all of
    them (about 14 hand-backs per real dial at 60 calls a minute). So the
    scheduler keeps the same schedule in memory (GCRA at the same rate, margin
    included) and sends a job only once its turn is within ``horizon_s``.
    Soft, like :func:`queue_budget`: a new leader starts afresh, and the gate
    still holds the limit.
    """

    horizon_s: float
    margin: float = 1.0
    _next: dict[int, datetime] = field(default_factory=dict)

    def interval_s(self, calls_per_minute: int) -> float:
        return 60.0 / (calls_per_minute * self.margin)

    def budget(self, campaign_id: int, calls_per_minute: int, now: datetime) -> int:
        """How many of the campaign's jobs may be sent now."""
        ahead = (self._next.get(campaign_id, now) - now).total_seconds()
        if ahead > self.horizon_s:
            return 0
        return math.floor((self.horizon_s - max(0.0, ahead)) / self.interval_s(calls_per_minute)) + 1

    def took(self, campaign_id: int, calls_per_minute: int, sent: int, now: datetime) -> None:
        """``sent`` of the campaign's jobs went to the broker now: their turns are taken."""
        if sent:
            start = max(self._next.get(campaign_id, now), now)
            self._next[campaign_id] = start + timedelta(seconds=sent * self.interval_s(calls_per_minute))

    def forget_others(self, active: Set[int]) -> None:
        """Drop campaigns no longer paced (ended, paused, limit removed)."""
        for campaign_id in self._next.keys() - active:
            del self._next[campaign_id]
