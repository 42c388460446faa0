"""The pure helpers behind pacing: intervals, the window bound GCRA guarantees, the busiest window."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.services.pacing.limits import (
    MICROS,
    Rate,
    account_key,
    busiest_window,
    campaign_key,
    day_string,
    emission_interval_us,
    max_grants_in_window,
)


def test_interval_is_rounded_up_so_the_rate_is_never_exceeded() -> None:
    assert emission_interval_us(10) == 100_000
    assert emission_interval_us(3) == 333_334  # 333_333.3 up, never down
    assert emission_interval_us(0.5) == 2_000_000
    assert emission_interval_us(30 / 60) == 2_000_000


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_interval_refuses_a_rate_that_is_not_positive_and_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        emission_interval_us(bad)


def test_window_bound_is_the_rate_with_burst_one() -> None:
    assert max_grants_in_window(10, 1) == 10
    assert max_grants_in_window(1, 1, window_s=60) == 60
    assert max_grants_in_window(1 / 60, 1, window_s=60) == 1  # one call per minute


def test_window_bound_with_fractions_and_bursts() -> None:
    assert max_grants_in_window(2.5, 1) == 3  # grants 0.4 s apart: 0, 0.4, 0.8
    assert max_grants_in_window(7.5, 3) == 10
    assert max_grants_in_window(20, 5) == 24


def test_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        max_grants_in_window(10, 0)


def test_busiest_window_is_half_open() -> None:
    assert busiest_window([]) == 0
    assert busiest_window([0.0, 1.0]) == 1  # 1.0 falls outside [0, 1)
    assert busiest_window([0.0, 0.5, 0.999, 1.0]) == 3
    assert busiest_window([5.0, 0.0, 0.2, 5.1, 5.2, 5.9]) == 4  # order does not matter


@given(st.lists(st.integers(0, 5_000), max_size=60), st.integers(1, 2_000))
def test_busiest_window_matches_counting_every_window(times: list[int], window: int) -> None:
    brute = max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)
    assert busiest_window([float(t) for t in times], window) == brute


@given(st.floats(0.05, 200), st.integers(1, 20), st.floats(0.5, 10))
def test_window_bound_is_exactly_what_a_saturated_gcra_gives(rate: float, burst: int, window_s: float) -> None:
    """Under endless demand GCRA grants ``burst`` at once, then one per interval: the bound is tight."""
    interval = emission_interval_us(rate)
    window_us = round(window_s * MICROS)
    horizon = burst + window_us // interval + 2
    grants = [0.0] * burst + [float(k * interval) for k in range(1, horizon)]
    assert busiest_window(grants, window_us) == max_grants_in_window(rate, burst, window_s)


def test_day_string_accepts_dates_and_checks_strings() -> None:
    assert day_string(date(2024, 3, 9)) == "2024-03-09"
    assert day_string("2024-03-09") == "2024-03-09"
    with pytest.raises(ValueError):
        day_string("2024-13-01")


def test_keys_and_per_minute_rates() -> None:
    assert account_key("ck") == "account:ck"
    assert campaign_key(7) == "campaign:7"
    rate = Rate.per_minute(campaign_key(7), 30)
    assert rate.per_second == 0.5
    assert rate.burst == 1
