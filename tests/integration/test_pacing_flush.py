"""Pacing after Redis forgets everything (FLUSHALL while every process keeps running): no request
goes out until the leader has rebuilt the send windows and slots from the database, and then the
requests of the last second still count, so the provider never sees more than its rate.

On a private redis-server: FLUSHALL must not touch anyone else's data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench.services import PrivateRedis, free_port
from outdial.services.pacing.limits import MICROS, SendWindow, account_key, busiest_window
from outdial.services.pacing.pacer import Pacer, RecentSends, sync_slots
from outdial.services.providers.accounts import Account, Limits
from outdial.settings import Settings

RATE = 3
ACCOUNT = Account("acct", "callkaro", "http://provider.invalid", limits=Limits(calls_per_second=RATE))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[redis.Redis]:
    server = PrivateRedis(free_port(6482), tmp_path / "redis")
    server.start()
    yield redis.Redis.from_url(server.url)
    server.stop()


def seed(pacer: Pacer, recent: dict[str, RecentSends]) -> None:
    """What the leading scheduler does on its next tick."""
    sync_slots(pacer.slots, {ACCOUNT.name: ACCOUNT}, {}, {}, 30.0, sends=pacer.sends, recent=lambda: recent)


def send_now(pacer: Pacer, send_id: str, max_wait_s: float = 0.0) -> float | None:
    """Let one request through and write it at once; the Redis time it left at, in seconds."""
    ticket = pacer.clear_to_send(ACCOUNT, send_id, max_wait_s=max_wait_s)
    if ticket is None:
        return None
    pacer.sent(ticket, time.monotonic())
    return ticket.redis_us / MICROS


def test_no_request_leaves_until_the_windows_are_rebuilt(client: redis.Redis) -> None:
    pacer = Pacer(client, Settings(provider_connect_timeout_s=1, provider_read_timeout_s=1))
    assert send_now(pacer, "before-seed") is None  # a fresh Redis: nothing is known yet
    seed(pacer, {})
    assert send_now(pacer, "a") is not None
    client.flushall()
    assert send_now(pacer, "b", max_wait_s=0.5) is None  # fails closed while the state is lost
    seed(pacer, {})
    assert send_now(pacer, "c") is not None


def test_after_a_flush_the_last_seconds_requests_still_count(client: redis.Redis) -> None:
    pacer = Pacer(client, Settings(provider_connect_timeout_s=1, provider_read_timeout_s=1))
    seed(pacer, {})
    times = [send_now(pacer, f"before-{i}", max_wait_s=2) for i in range(RATE)]
    client.flushall()
    # The database shows the RATE requests just answered: they still fill the window.
    seed(pacer, {ACCOUNT.name: RecentSends(in_flight=0, answered=RATE)})
    assert send_now(pacer, "right-after") is None
    times += [send_now(pacer, f"after-{i}", max_wait_s=3) for i in range(RATE)]
    assert None not in times
    # The busiest second (by Redis's clock) holds no more than the rate, flush or not.
    assert busiest_window([t for t in times if t is not None]) <= RATE


def test_in_flight_requests_hold_their_place_for_their_lease(client: redis.Redis) -> None:
    sends = SendWindow(client, "p", require_seeded=False)
    assert sends.seed(account_key("acct"), in_flight=2, answered=5, limit=RATE, lease_s=0.5) == RATE
    wait, _ = sends.try_send(account_key("acct"), RATE, "x", lease_s=0.5)
    assert wait > 0.5  # two in flight until their lease ends, plus the window after it
    time.sleep(wait)
    assert sends.try_send(account_key("acct"), RATE, "x", lease_s=0.5)[0] == 0
