"""``outdial up`` restarts a part that exits, with a back-off and a log line, and gives up only
after repeated fast crashes; the other parts are left alone."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from outdial.settings import Settings
from outdial.stack import PartGaveUp, RestartPolicy, Stack

# Each "part" is a tiny Python process: how long it lives and its exit status come from its role.
LIFETIMES = {"steady": (60.0, 0), "flaky": (0.4, 3), "broken": (0.0, 1)}


class FakeStack(Stack):
    def argv(self, role: str) -> list[str]:
        seconds, status = LIFETIMES[role]
        return [sys.executable, "-c", f"import sys, time; time.sleep({seconds}); sys.exit({status})"]


def make_stack(tmp_path: Path, policy: RestartPolicy) -> FakeStack:
    return FakeStack(Settings(), tmp_path / "logs", restart_policy=policy)


def supervise_for(stack: Stack, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stack.supervise()
        time.sleep(0.02)


def test_a_part_that_exits_after_running_is_restarted_and_the_others_are_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack = make_stack(tmp_path, RestartPolicy(fast_crash_s=0.2, max_fast_crashes=2, backoff_base_s=0.05))
    (tmp_path / "logs").mkdir()
    try:
        steady, flaky = stack.spawn("steady"), stack.spawn("flaky")
        with caplog.at_level(logging.WARNING, logger="outdial.stack"):
            supervise_for(stack, 2.0)  # flaky lives 0.4 s each time: several restarts, none fast
        assert stack.processes["steady"] is steady and steady.poll() is None
        assert stack.processes["flaky"] is not flaky
        exits = [r.getMessage() for r in caplog.records if "exited with status 3" in r.getMessage()]
        assert len(exits) >= 3, exits
        assert all(m.startswith("flaky exited with status 3 after") for m in exits)
        assert sum(r.getMessage() == "flaky restarted" for r in caplog.records) >= 3
    finally:
        stack.stop()
    assert not stack.processes


def test_repeated_fast_crashes_back_off_then_give_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    policy = RestartPolicy(fast_crash_s=5.0, max_fast_crashes=4, backoff_base_s=0.1, backoff_cap_s=10)
    stack = make_stack(tmp_path, policy)
    (tmp_path / "logs").mkdir()
    started = time.monotonic()
    try:
        stack.spawn("steady")
        stack.spawn("broken")
        with caplog.at_level(logging.WARNING, logger="outdial.stack"), pytest.raises(PartGaveUp, match="broken"):
            supervise_for(stack, 10.0)
        # Three restarts waited 0.1 + 0.2 + 0.4 s before the fourth fast crash gave up.
        assert time.monotonic() - started >= 0.7
        restarts = [r.getMessage() for r in caplog.records if r.getMessage() == "broken restarted"]
        assert len(restarts) == policy.max_fast_crashes - 1
        assert stack.processes["steady"].poll() is None
    finally:
        stack.stop()


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff_base_s=1, backoff_cap_s=5)
    assert [policy.backoff_s(n) for n in range(6)] == [1, 1, 2, 4, 5, 5]
