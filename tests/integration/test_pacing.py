"""Pacing on the real Redis: rates, pauses, concurrency slots and daily attempts, across processes.

The cross-process tests spawn OS processes that hammer the same keys and
record the Redis time of every grant (``Decision.at_s``, read inside the
script), so the limits are checked on the clock the limiter itself uses.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
import redis

from outdial.services.pacing.limits import (
    ConcurrencySlots,
    DailyAttempts,
    Rate,
    RateLimiter,
    busiest_window,
    max_grants_in_window,
)

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def prefix(pacing_prefix: str) -> str:
    return pacing_prefix


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return float(seconds) + micros / 1_000_000


# --- Single process: the rules ------------------------------------------------------------


def test_burst_then_one_per_interval(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix)
    granted = [limiter.acquire("acct", 2, burst=3) for _ in range(3)]
    assert all(d.allowed for d in granted)
    denied = limiter.acquire("acct", 2, burst=3)
    assert not denied.allowed
    assert 0.4 < denied.retry_after_s <= 0.5  # the next turn comes one interval (0.5 s) after the first grant


def test_a_denial_costs_nothing_and_its_wait_is_right(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix)
    assert limiter.acquire("acct", 5).allowed
    for _ in range(20):  # hammering while denied must not push the next turn back
        denied = limiter.acquire("acct", 5)
        assert not denied.allowed
    time.sleep(denied.retry_after_s)
    assert limiter.acquire("acct", 5).allowed


def test_fractional_rate_per_minute(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix)
    rate = Rate.per_minute("campaign:1", 30)  # one every 2 s
    assert limiter.acquire_all([rate]).allowed
    denied = limiter.acquire_all([rate])
    assert not denied.allowed
    assert 1.9 < denied.retry_after_s <= 2.0


def test_acquire_all_is_all_or_nothing(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix)
    account, campaign = Rate("account:a", 100), Rate("campaign:1", 1)
    assert limiter.acquire_all([campaign]).allowed  # the campaign's turn is spent
    denied = limiter.acquire_all([account, campaign])
    assert not denied.allowed
    assert 0.9 < denied.retry_after_s <= 1.0  # the longest wait of the two
    # The denial took nothing from the account: it still has its turn right now.
    assert limiter.acquire_all([account]).allowed
    with pytest.raises(ValueError):
        limiter.acquire_all([account, Rate("account:a", 5)])


def test_slow_down_pauses_the_key_and_only_ever_grows(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix)
    assert limiter.slow_down("account:a", 0.4) == pytest.approx(0.4, abs=0.01)
    assert limiter.slow_down("account:a", 0.1) > 0.3  # a shorter Retry-After does not cut it short
    denied = limiter.acquire("account:a", 1000, burst=50)
    assert not denied.allowed
    assert 0.3 < denied.retry_after_s <= 0.4
    assert limiter.acquire("account:b", 1000).allowed  # other accounts are not paused
    assert 0.3 < limiter.paused_for("account:a") <= 0.4
    time.sleep(denied.retry_after_s)
    assert limiter.paused_for("account:a") == 0
    assert limiter.acquire("account:a", 1000).allowed


def test_reserve_books_turns_on_the_schedule(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix)
    rates = [Rate("account:a", 10)]
    first = limiter.reserve(rates, max_wait_s=0.25)
    assert first.allowed and first.start_in_s == 0
    booked = [limiter.reserve(rates, max_wait_s=0.25) for _ in range(2)]
    assert all(d.allowed for d in booked)
    # Turns 0.1 s apart on GCRA's schedule, however late or early the callers asked.
    assert [round(d.at_s - first.at_s, 6) for d in booked] == [0.1, 0.2]
    assert 0.15 < booked[1].start_in_s <= 0.2
    too_far = limiter.reserve(rates, max_wait_s=0.25)
    assert not too_far.allowed
    assert 0.25 < too_far.retry_after_s <= 0.3
    assert limiter.reserve(rates, max_wait_s=0.35).at_s == pytest.approx(first.at_s + 0.3, abs=1e-6)


def test_reserve_books_nothing_during_a_pause(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix)
    limiter.slow_down("account:a", 0.3)
    denied = limiter.reserve([Rate("account:a", 10)], max_wait_s=5)
    assert not denied.allowed
    assert 0.2 < denied.retry_after_s <= 0.3


def test_slots_limit_and_reclaim_expired_leases(client: redis.Redis, prefix: str) -> None:
    slots = ConcurrencySlots(client, prefix)
    assert slots.acquire("acct", "job-1", limit=2, lease_s=0.3)
    assert slots.acquire("acct", "job-2", limit=2, lease_s=30)
    assert not slots.acquire("acct", "job-3", limit=2, lease_s=30)
    assert slots.held("acct") == 2
    time.sleep(0.35)  # job-1's holder died without releasing: its lease runs out
    assert slots.held("acct") == 1
    assert slots.acquire("acct", "job-3", limit=2, lease_s=30)
    assert not slots.renew("acct", "job-1", lease_s=30)  # too late: the slot is job-3's now
    assert not slots.release("acct", "job-1")
    assert slots.held("acct") == 2


def test_the_same_job_never_takes_two_slots(client: redis.Redis, prefix: str) -> None:
    slots = ConcurrencySlots(client, prefix)
    assert slots.acquire("acct", 41, limit=2, lease_s=0.3)
    assert slots.acquire("acct", 41, limit=2, lease_s=0.3)  # a redelivered task: still one slot
    assert slots.held("acct") == 1
    assert slots.acquire("acct", 42, limit=2, lease_s=30)
    assert slots.acquire("acct", 41, limit=2, lease_s=0.3)  # at the limit, the holder itself renews
    assert slots.held("acct") == 2


def test_renew_keeps_a_lease_alive(client: redis.Redis, prefix: str) -> None:
    slots = ConcurrencySlots(client, prefix)
    assert slots.acquire("acct", "job-1", limit=1, lease_s=0.3)
    assert slots.renew("acct", "job-1", lease_s=30)
    time.sleep(0.35)
    assert slots.held("acct") == 1
    assert not slots.acquire("acct", "job-2", limit=1, lease_s=30)
    assert not slots.renew("acct", "job-never", lease_s=30)


def test_release_is_idempotent_and_the_key_does_not_linger(client: redis.Redis, prefix: str) -> None:
    slots = ConcurrencySlots(client, prefix)
    assert slots.acquire("acct", "job-1", limit=1, lease_s=2)
    assert 0 < client.pttl(f"{prefix}:slots:acct") <= 3000  # gone soon after its last lease
    assert slots.release("acct", "job-1") is True
    assert slots.release("acct", "job-1") is False
    assert slots.release("acct", "job-1") is False
    assert slots.held("acct") == 0
    assert slots.acquire("acct", "job-2", limit=1, lease_s=2)


def test_a_lowered_limit_admits_nobody_until_enough_have_left(client: redis.Redis, prefix: str) -> None:
    slots = ConcurrencySlots(client, prefix)
    for job in ("a", "b", "c"):
        assert slots.acquire("acct", job, limit=3, lease_s=30)
    assert not slots.acquire("acct", "d", limit=2, lease_s=30)
    slots.release("acct", "a")
    assert not slots.acquire("acct", "d", limit=2, lease_s=30)
    slots.release("acct", "b")
    assert slots.acquire("acct", "d", limit=2, lease_s=30)


def test_after_lost_data_no_slot_until_calls_in_progress_are_seeded(client: redis.Redis, prefix: str) -> None:
    slots = ConcurrencySlots(client, prefix, require_seeded=True)
    assert slots.needs_seed()
    assert not slots.acquire("acct", "new:1", limit=3, lease_s=30)  # nothing is known: admit nobody
    slots.seed({"acct": ["7:1", "8:1"], "idle": []}, lease_s=30)
    assert not slots.needs_seed()
    assert slots.held("acct") == 2
    assert slots.acquire("acct", "new:1", limit=3, lease_s=30)
    assert not slots.acquire("acct", "new:2", limit=3, lease_s=30)  # the seeded calls count
    slots.seed({"acct": ["7:1", "8:1"]}, lease_s=30)  # a second seeder changes nothing
    assert slots.held("acct") == 3
    # Redis restarts without its data: the marker goes with the slots, and acquires stop again.
    client.delete(*client.scan_iter(f"{prefix}:*"))
    assert slots.needs_seed()
    assert not slots.acquire("acct", "new:2", limit=3, lease_s=30)
    assert ConcurrencySlots(client, prefix).acquire("acct", "new:2", limit=3, lease_s=30)  # unless not required


def test_seeding_keeps_a_live_lease(client: redis.Redis, prefix: str) -> None:
    slots = ConcurrencySlots(client, prefix)
    assert slots.acquire("acct", "7:1", limit=2, lease_s=0.3)
    slots.seed({"acct": ["7:1"]}, lease_s=30)  # NX: a seed never rewrites a holder's lease
    time.sleep(0.35)
    assert slots.held("acct") == 0


def test_daily_attempts_per_number_and_local_day(client: redis.Redis, prefix: str) -> None:
    attempts = DailyAttempts(client, prefix)
    number = "+14155550100"
    assert attempts.try_attempt(number, "2024-05-01", limit=2)
    assert attempts.try_attempt(number, "2024-05-01", limit=2)
    assert not attempts.try_attempt(number, "2024-05-01", limit=2)
    assert attempts.count(number, "2024-05-01") == 2  # the refusal was not counted
    assert attempts.try_attempt(number, "2024-05-02", limit=2)  # a new local day
    assert attempts.try_attempt("+14155550101", "2024-05-01", limit=2)  # another number
    ttl = client.ttl(f"{prefix}:attempts:{number}:2024-05-01")
    assert 2 * 24 * 3600 - 5 < ttl <= 2 * 24 * 3600


def test_undo_gives_back_an_attempt_that_did_not_go_out(client: redis.Redis, prefix: str) -> None:
    attempts = DailyAttempts(client, prefix)
    number = "+14155550100"
    assert attempts.try_attempt(number, "2024-05-01", limit=1)
    assert attempts.undo(number, "2024-05-01") is True
    assert attempts.count(number, "2024-05-01") == 0
    assert attempts.undo(number, "2024-05-01") is False  # never below zero
    assert attempts.try_attempt(number, "2024-05-01", limit=1)
    assert not attempts.try_attempt(number, "2024-05-01", limit=1)


# --- Across processes ---------------------------------------------------------------------


def _start_gate(client: redis.Redis, prefix: str) -> tuple[float, float]:
    """Wait for the parent's go, then for the run's start: its start and end in Redis time."""
    while (raw := client.get(f"{prefix}:go")) is None:
        time.sleep(0.005)
    start, end = (float(v) for v in raw.split())  # float() reads bytes too
    time.sleep(max(0.0, start - redis_now(client)))
    return start, end


def _hammer_rate(
    url: str, prefix: str, ready: Barrier, out: Queue[Any], rate: float, burst: int, reserve: bool, pause_at: float
) -> None:
    """Take grants as fast as allowed until the run ends; optionally pause the key mid-run (a 429).

    With ``reserve`` each process books a turn up to 0.5 s ahead and sleeps until it,
    as a dispatching worker would; otherwise it asks and sleeps the wait it is told.
    """
    client = redis.Redis.from_url(url)
    limiter = RateLimiter(client, prefix)
    ready.wait()
    start, end = _start_gate(client, prefix)
    grants: list[float] = []
    paused: tuple[float, float] | None = None
    while True:
        if pause_at and paused is None and redis_now(client) >= start + pause_at:
            before = redis_now(client)
            limiter.slow_down("account:a", 0.5)
            paused = (before, redis_now(client))
        if reserve:
            decision = limiter.reserve([Rate("account:a", rate, burst)], max_wait_s=0.5)
        else:
            decision = limiter.acquire("account:a", rate, burst)
        if decision.at_s >= end:
            break
        if decision.allowed:
            grants.append(decision.at_s)
            time.sleep(decision.start_in_s)
        else:
            time.sleep(min(decision.retry_after_s, end - decision.at_s))
    out.put((os.getpid(), grants, paused))


def _hammer_slots(url: str, prefix: str, ready: Barrier, out: Queue[Any], limit: int) -> None:
    """Hold slots for a few ms each; count holders with a Redis counter raised inside the slot."""
    client = redis.Redis.from_url(url)
    slots = ConcurrencySlots(client, prefix)
    ready.wait()
    _start, end = _start_gate(client, prefix)
    seen: list[int] = []
    n = 0
    while redis_now(client) < end:
        n += 1
        holder = f"{os.getpid()}:{n}"
        if slots.acquire("acct", holder, limit, lease_s=10):
            seen.append(int(client.incr(f"{prefix}:inside")))
            time.sleep(random.uniform(0, 0.02))
            client.decr(f"{prefix}:inside")
            slots.release("acct", holder)
        else:
            time.sleep(0.002)
    out.put((os.getpid(), seen, None))


def _hammer_attempts(url: str, prefix: str, ready: Barrier, out: Queue[Any], limit: int) -> None:
    client = redis.Redis.from_url(url)
    attempts = DailyAttempts(client, prefix)
    ready.wait()
    _start_gate(client, prefix)
    won = [1 for _ in range(40) if attempts.try_attempt("+14155550100", "2024-05-01", limit)]
    out.put((os.getpid(), won, None))


def _run_processes(
    redis_url: str,
    prefix: str,
    target: Callable[..., None],
    processes: int,
    duration_s: float,
    *params: Any,
) -> tuple[float, float, list[tuple[int, list[Any], Any]]]:
    """Start ``processes`` copies of ``target``, let them all go at once, collect what each saw."""
    client = redis.Redis.from_url(redis_url)
    ready = SPAWN.Barrier(processes + 1)
    out: Queue[Any] = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(redis_url, prefix, ready, out, *params)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        ready.wait(timeout=30)  # every process is up and connected: spawning is not part of the run
        start = redis_now(client) + 0.1
        end = start + duration_s
        client.set(f"{prefix}:go", f"{start} {end}")
        results = [out.get(timeout=duration_s + 30) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return start, end, results


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rate", "burst", "processes", "reserve"), [(20.0, 1, 4, False), (20.0, 1, 4, True), (7.5, 3, 3, False)]
)
def test_rate_holds_across_processes_and_is_reached(
    redis_url: str, prefix: str, rate: float, burst: int, processes: int, reserve: bool
) -> None:
    duration = 3.0
    start, end, results = _run_processes(
        redis_url, prefix, _hammer_rate, processes, duration, rate, burst, reserve, 0.0
    )
    grants = sorted(at for _pid, times, _ in results for at in times)
    assert sum(1 for _pid, times, _ in results if times) >= 2, "the processes did not really compete"
    busiest = busiest_window(grants, 1.0)
    assert busiest <= max_grants_in_window(rate, burst, 1.0), f"{busiest} grants in one second at {rate}/s"
    # At full demand GCRA grants the burst at once, then one per interval: burst - 1 above rate * time.
    in_run = sum(1 for at in grants if start <= at < end)
    reached = (in_run - (burst - 1)) / (rate * (end - start))
    how = "reserve" if reserve else "acquire"
    print(f"{how} {rate}/s burst {burst} x{processes}: busiest second {busiest}, reached {reached:.1%} of the rate")
    assert reached >= 0.95


@pytest.mark.slow
def test_slow_down_pauses_every_process(redis_url: str, prefix: str) -> None:
    # One process pauses the account 0.4 s into the run, as on a 429; the others must stop too.
    _start, _end, results = _run_processes(redis_url, prefix, _hammer_rate, 3, 1.5, 50.0, 1, False, 0.4)
    grants = sorted(at for _pid, times, _ in results for at in times)
    for _pid, _times, paused in results:
        assert paused is not None
        before, after = paused
        assert not [at for at in grants if after < at < before + 0.5], "a grant inside the pause"
        assert any(at >= before + 0.5 for at in grants), "grants did not resume after the pause"
    assert busiest_window(grants, 1.0) <= 50


@pytest.mark.slow
def test_concurrency_holds_across_processes(client: redis.Redis, redis_url: str, prefix: str) -> None:
    limit = 3
    _start, _end, results = _run_processes(redis_url, prefix, _hammer_slots, 4, 2.0, limit)
    seen = [n for _pid, counts, _ in results for n in counts]
    assert max(seen) <= limit, f"{max(seen)} holders at once with a limit of {limit}"
    assert max(seen) == limit, "demand never filled the slots: the test proved nothing"
    assert sum(1 for _pid, counts, _ in results if counts) >= 2
    assert ConcurrencySlots(client, prefix).held("acct") == 0  # every path released


@pytest.mark.slow
def test_daily_attempts_hold_across_processes(client: redis.Redis, redis_url: str, prefix: str) -> None:
    _start, _end, results = _run_processes(redis_url, prefix, _hammer_attempts, 4, 0.5, 10)
    assert sum(len(won) for _pid, won, _ in results) == 10
    assert DailyAttempts(client, prefix).count("+14155550100", "2024-05-01") == 10
