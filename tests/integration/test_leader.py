"""Scheduler leadership through the real Redis: one leader, a quick take-over when it dies."""

from __future__ import annotations

import time
import uuid

import redis

from outdial.scheduler.leader import Leadership


def test_one_leader_and_take_over_after_the_lease(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"outdial:test:leader:{uuid.uuid4().hex}"
    first, second = Leadership(client, key, lease_s=0.5), Leadership(client, key, lease_s=0.5)
    assert first.hold() is True
    assert second.hold() is False
    assert first.hold() is True  # renewing keeps the lead
    # The leader dies without releasing: the other takes over once the lease runs out.
    deadline = time.monotonic() + 3
    while not second.hold():
        assert time.monotonic() < deadline, "no take-over within 3 s of a 0.5 s lease"
        time.sleep(0.05)
    assert first.hold() is False  # the old leader learns it lost the lead
    second.release()
    assert first.hold() is True
    first.release()
    client.delete(key)
