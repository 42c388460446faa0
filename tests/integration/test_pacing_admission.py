"""One admission on the real Redis: the day count, the slot, the rates and the send room taken
in one script, all or nothing, on the same keys as the separate limiters (which give them back)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    seeded_key,
)
from outdial.services.pacing.pacer import Pacer
from outdial.services.providers.accounts import Account, Limits
from outdial.settings import Settings

DAY = date(2026, 12, 7)
NUMBER = "+12125550100"


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def prefix(client: redis.Redis, pacing_prefix: str) -> str:
    client.set(seeded_key(pacing_prefix), 1)  # as after the leader's first tick
    return pacing_prefix


def slot(holder: str, limit: int = 1) -> Slot:
    return Slot("acct", holder, limit, 30.0)


def send(send_id: str, limit: int = 5) -> Send:
    return Send("account:acct", limit, send_id, lease_s=20.0)


def test_a_grant_takes_every_limit_and_each_limiter_sees_it(client: redis.Redis, prefix: str) -> None:
    admissions = Admissions(client, prefix)
    rate = Rate("account:acct", 1 / 3600)  # one an hour: a second turn is an hour away
    granted = admissions.admit(DailyCap(NUMBER, DAY, 2), slot("1:1"), [rate], 1.0, send("1:1:a"))
    assert (granted.outcome, granted.wait_s, granted.send_taken) == (Admitted.GRANTED, 0.0, True)
    assert DailyAttempts(client, prefix).count(NUMBER, DAY) == 1
    assert ConcurrencySlots(client, prefix).held("acct") == 1
    assert client.zscore(f"{prefix}:sent:account:acct", "1:1:a") is not None
    assert not RateLimiter(client, prefix).acquire("account:acct", 1 / 3600).allowed  # the turn is taken

    # What the separate limiters give back is what the admission took.
    assert ConcurrencySlots(client, prefix).release("acct", "1:1")
    assert DailyAttempts(client, prefix).undo(NUMBER, DAY)
    SendWindow(client, prefix).forget("account:acct", "1:1:a")
    assert client.zcard(f"{prefix}:sent:account:acct") == 0


@pytest.mark.parametrize("denial", ["daily", "slot", "rate", "pause"])
def test_a_denial_takes_nothing(client: redis.Redis, prefix: str, denial: str) -> None:
    admissions, daily, slots = (
        Admissions(client, prefix),
        DailyAttempts(client, prefix),
        ConcurrencySlots(client, prefix),
    )
    limiter = RateLimiter(client, prefix)
    rate = Rate("campaign:7", 1 / 3600)
    if denial == "daily":
        assert daily.try_attempt(NUMBER, DAY, 1)
    if denial == "slot":
        assert slots.acquire("acct", "other:1", 1, 30.0)
    if denial == "rate":
        assert limiter.acquire("campaign:7", 1 / 3600).allowed
    if denial == "pause":
        limiter.slow_down("campaign:7", 60.0)
    before = {key: client.dump(key) for key in client.scan_iter(f"{prefix}:*")}

    result = admissions.admit(DailyCap(NUMBER, DAY, 1), slot("1:1"), [rate], 1.0, send("1:1:a"))

    expected = {"daily": Admitted.DAILY_CAP, "slot": Admitted.SLOT_BUSY}.get(denial, Admitted.RATE)
    assert result.outcome == expected and not result.send_taken
    if expected == Admitted.RATE:
        assert result.wait_s > 1.0  # when to ask again: the next turn or the pause's end
    after = {key: client.dump(key) for key in client.scan_iter(f"{prefix}:*")}
    assert after.keys() == before.keys()  # nothing new: no count, slot, turn or send entry
    assert daily.count(NUMBER, DAY) == (1 if denial == "daily" else 0)
    assert slots.held("acct") == (1 if denial == "slot" else 0)


def test_a_turn_ahead_is_reserved_but_takes_no_send_room(client: redis.Redis, prefix: str) -> None:
    admissions = Admissions(client, prefix)
    rate = Rate("account:acct", 2.0)  # one every 0.5 s
    first = admissions.admit(None, None, [rate], 1.0, send("a"))
    second = admissions.admit(None, None, [rate], 1.0, send("b"))
    assert first.outcome == second.outcome == Admitted.GRANTED
    assert first.send_taken and first.wait_s == 0
    # The second turn is booked half a second ahead: its sender asks the window when it is due.
    assert 0.3 < second.wait_s <= 0.5 and not second.send_taken
    assert client.zrange(f"{prefix}:sent:account:acct", 0, -1) == [b"a"]
    # Beyond the longest wait nothing is booked.
    third = admissions.admit(None, None, [rate], 0.1, send("c"))
    assert third.outcome == Admitted.RATE


def test_a_full_send_window_leaves_the_room_to_be_asked_for_later(client: redis.Redis, prefix: str) -> None:
    window = SendWindow(client, prefix, require_seeded=True)
    assert window.try_send("account:acct", 1, "earlier", lease_s=20.0)[0] == 0
    admitted = Admissions(client, prefix).admit(None, slot("1:1"), [], 0.0, send("1:1:a", limit=1))
    assert admitted.outcome == Admitted.GRANTED and not admitted.send_taken
    assert client.zrange(f"{prefix}:sent:account:acct", 0, -1) == [b"earlier"]


def test_until_seeded_no_slot_and_no_send_room(client: redis.Redis, prefix: str) -> None:
    client.delete(seeded_key(prefix))  # Redis lost its data
    admissions = Admissions(client, prefix)
    assert admissions.admit(None, slot("1:1"), [], 0.0, send("x")).outcome == Admitted.SLOT_BUSY
    without_slot = admissions.admit(None, None, [], 0.0, send("x"))
    assert without_slot.outcome == Admitted.GRANTED and not without_slot.send_taken


def test_the_same_holder_renews_rather_than_taking_two_slots(client: redis.Redis, prefix: str) -> None:
    admissions = Admissions(client, prefix)
    assert admissions.admit(None, slot("1:1", limit=1), [], 0.0).outcome == Admitted.GRANTED
    assert admissions.admit(None, slot("1:1", limit=1), [], 0.0).outcome == Admitted.GRANTED  # a redelivery
    assert admissions.admit(None, slot("2:1", limit=1), [], 0.0).outcome == Admitted.SLOT_BUSY
    assert ConcurrencySlots(client, prefix).held("acct") == 1


def test_bad_limits_are_refused_naming_the_value(client: redis.Redis, prefix: str) -> None:
    admissions = Admissions(client, prefix)
    with pytest.raises(ValueError, match="at least 1, not 0"):
        admissions.admit(None, slot("1:1", limit=0), [], 0.0)
    with pytest.raises(ValueError, match=r"max_wait_s.*-1"):
        admissions.admit(None, None, [], -1.0)
    with pytest.raises(ValueError, match="each key may appear once"):
        admissions.admit(None, None, [Rate("k", 1.0), Rate("k", 2.0)], 0.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["admit", "release"]), st.integers(1, 4), st.sampled_from(["+12125550100", "+12125550101"])
        ),
        min_size=1,
        max_size=25,
    ),
    slot_limit=st.integers(1, 3),
    daily_limit=st.integers(1, 3),
)
def test_slots_and_day_counts_match_a_model(
    client: redis.Redis, prefix: str, steps: list[tuple[str, int, str]], slot_limit: int, daily_limit: int
) -> None:
    """Any sequence of admissions and releases: never more holders than the limit, never more
    attempts a number a day than its cap, and a denial changes neither (checked against a model)."""
    run = f"{prefix}:{uuid.uuid4().hex[:8]}"
    client.set(seeded_key(run), 1)
    admissions, slots = Admissions(client, run), ConcurrencySlots(client, run)
    holders: set[str] = set()
    counts: dict[str, int] = {}
    for action, job, number in steps:
        holder = f"{job}:1"
        if action == "release":
            assert slots.release("acct", holder) == (holder in holders)
            holders.discard(holder)
            continue
        result = admissions.admit(DailyCap(number, DAY, daily_limit), slot(holder, slot_limit), [], 0.0)
        if counts.get(number, 0) >= daily_limit:
            expected = Admitted.DAILY_CAP
        elif holder not in holders and len(holders) >= slot_limit:
            expected = Admitted.SLOT_BUSY
        else:
            expected = Admitted.GRANTED
        assert result.outcome == expected
        if expected == Admitted.GRANTED:
            holders.add(holder)
            counts[number] = counts.get(number, 0) + 1
        assert slots.held("acct") == len(holders)
        assert DailyAttempts(client, run).count(number, DAY) == counts.get(number, 0)


def test_a_pacer_admission_carries_its_send_room_to_the_send(client: redis.Redis, prefix: str, tmp_path: Path) -> None:
    """The gate holds the room taken with the turn: ``clear_to_send`` asks Redis no more, and the
    written request is counted from the moment it left, not until its lease ends."""
    pacer = Pacer(client, Settings(pacing_prefix=prefix, data_dir=tmp_path))
    account = Account("acct", "callkaro", "http://provider.invalid", limits=Limits(calls_per_second=2))
    gate = pacer.admit(account, 1, 1, NUMBER, datetime.now(UTC))
    assert gate.open and gate.ticket is not None
    assert pacer.clear_to_send(account, "attempt-9", 1.0, gate.ticket) is gate.ticket
    key = f"{prefix}:sent:account:acct"
    in_flight = client.zscore(key, gate.ticket.send_id)
    pacer.sent(gate.ticket, time.monotonic())
    written = client.zscore(key, gate.ticket.send_id)
    assert in_flight is not None and written is not None and in_flight - written > 15e6  # the 20 s lease, less
