"""The retry policy (outdial/services/retries.py): what follows an outcome, and transport back-off."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from outdial.services.retries import DEFAULT_RETRY_ON, Next, after_outcome, transport_backoff
from outdial.services.timing.rules import Rules, plan
from outdial.services.timing.spec import compile_rules, load_job_spec

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York


def rules_of(**fields: Any) -> Rules:
    spec = load_job_spec({"to_number": "+12125550123", **fields})
    return compile_rules(spec, spec.to_number)


def test_outcome_not_in_retry_on_completes_the_job() -> None:
    rules = rules_of(number_of_retries=3)
    assert after_outcome(rules, DEFAULT_RETRY_ON, "completed", 1, START, START) == Next("completed")
    assert after_outcome(rules, DEFAULT_RETRY_ON, "voicemail", 1, START, START) == Next("completed", reason="voicemail")
    # A campaign that retries voicemail too.
    retried = after_outcome(rules, (*DEFAULT_RETRY_ON, "voicemail"), "voicemail", 1, START, START)
    assert retried.state == "scheduled"


def test_retry_uses_gap_k_from_the_end_of_attempt_k() -> None:
    rules = rules_of(number_of_retries=3, gap_between_retries=[10, 20])
    end = START + timedelta(minutes=2)
    assert after_outcome(rules, DEFAULT_RETRY_ON, "no_answer", 1, START, end).due == end + timedelta(minutes=10)
    assert after_outcome(rules, DEFAULT_RETRY_ON, "busy", 2, START, end).due == end + timedelta(minutes=20)
    assert after_outcome(rules, DEFAULT_RETRY_ON, "failed", 3, START, end).due == end + timedelta(minutes=20)


def test_budget_used_up_is_exhausted() -> None:
    rules = rules_of(number_of_retries=2)
    assert after_outcome(rules, DEFAULT_RETRY_ON, "no_answer", 3, START, START) == Next("exhausted", reason="no_answer")
    assert after_outcome(rules_of(), DEFAULT_RETRY_ON, "busy", 1, START, START).state == "exhausted"


def test_retry_past_the_window_expires_or_carries_over() -> None:
    # Callee hours 08:00-21:00 New York; attempt at 20:50 EST (01:50Z), retry 30 min later is 21:20.
    late = datetime(2026, 12, 2, 1, 50, tzinfo=UTC)
    expired = after_outcome(rules_of(number_of_retries=1), DEFAULT_RETRY_ON, "no_answer", 1, late, late)
    assert expired.state == "expired" and expired.due is None
    carried = after_outcome(
        rules_of(number_of_retries=1, carry_over=True), DEFAULT_RETRY_ON, "no_answer", 1, late, late
    )
    # Next morning 08:00 EST = 13:00Z; the window it belongs to ends at 21:00 EST = 02:00Z.
    assert carried == Next("scheduled", datetime(2026, 12, 2, 13, tzinfo=UTC), datetime(2026, 12, 3, 2, tzinfo=UTC))


@settings(max_examples=60, deadline=None)
@given(
    retries=st.integers(0, 10),
    gaps=st.one_of(st.integers(0, 600), st.lists(st.integers(0, 600), min_size=1, max_size=4)),
    carry_over=st.booleans(),
    fail_after_s=st.integers(0, 1800),
    start_minutes=st.integers(0, 14 * 24 * 60),
)
def test_worker_path_follows_the_plan(
    retries: int, gaps: int | list[int], carry_over: bool, fail_after_s: int, start_minutes: int
) -> None:
    """Failing every attempt through ``after_outcome`` gives the attempts and the end ``outdial plan`` shows."""
    rules = rules_of(
        number_of_retries=retries,
        gap_between_retries=gaps,
        carry_over=carry_over,
        min_trigger_time="09:00",
        max_trigger_time="17:00",
        timezone="America/New_York",
    )
    start = datetime(2026, 10, 25, tzinfo=UTC) + timedelta(minutes=start_minutes)
    fail_after = timedelta(seconds=fail_after_s)
    expected = plan(rules, start, fail_after)
    if not expected.attempts:
        return
    attempts, state = [expected.attempts[0]], "scheduled"
    while state == "scheduled":
        step = after_outcome(
            rules, DEFAULT_RETRY_ON, "no_answer", len(attempts), attempts[-1], attempts[-1] + fail_after
        )
        state = step.state
        if step.due is not None:
            assert step.window_end is not None and step.due < step.window_end
            attempts.append(step.due)
    assert attempts == expected.attempts
    assert state == expected.outcome


@given(
    resends=st.integers(0, 40),
    retry_after=st.one_of(st.none(), st.floats(0, 10_000)),
    base=st.floats(0.01, 10),
    cap=st.floats(0.1, 600),
    seed=st.integers(0, 2**32),
)
def test_backoff_has_full_jitter_under_the_cap_and_honours_retry_after(
    resends: int, retry_after: float | None, base: float, cap: float, seed: int
) -> None:
    delay = transport_backoff(resends, retry_after, base, cap, random.Random(seed)).total_seconds()
    ceiling = min(cap, base * 2**resends)
    floor = 0.0 if retry_after is None else min(retry_after, cap)
    assert floor - 1e-6 <= delay <= max(ceiling, floor) + 1e-6
    assert delay <= cap + 1e-6


def test_backoff_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = [transport_backoff(3, None, 1.0, 60.0, rng).total_seconds() for _ in range(500)]
    assert min(delays) < 1.0 and max(delays) > 7.0 and all(0 <= d <= 8.0 for d in delays)
