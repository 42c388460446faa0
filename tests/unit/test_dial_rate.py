"""The campaign page's dial-rate chart: honest buckets, partial buckets marked, an axis that holds the peak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from outdial.api.dial_rate import (
    MAX_BUCKETS,
    PAD_X,
    PAD_Y,
    align,
    bucket_width,
    buckets_between,
    chart,
    dial_rate,
    nice_ceiling,
)

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=1)  # every bucket finished


def test_no_requests_no_points() -> None:
    assert chart([]).points == [] and chart([]).area == "" and chart([]).partial_line == ""


def test_one_minute_buckets_show_real_counts() -> None:
    # 361 calls in six minutes never reads as hundreds per minute (10 s buckets scaled up did).
    counts = {0: 61, 1: 60, 2: 60, 3: 60, 4: 60, 5: 60}
    rate = dial_rate(counts, T0, 60, 6, LATER)
    assert [p.per_minute for p in rate] == [61, 60, 60, 60, 60, 60]
    assert sum(p.count for p in rate) == 361 and not any(p.partial for p in rate)


def test_short_bursts_still_use_whole_minutes() -> None:
    assert bucket_width(T0, T0 + timedelta(seconds=65)) == 60
    assert bucket_width(T0, T0 + timedelta(hours=1)) == 60
    assert bucket_width(T0, T0 + timedelta(hours=3)) == 300


def test_wider_buckets_average_their_real_count() -> None:
    rate = dial_rate({0: 50}, T0, 300, 1, LATER)
    assert rate[0].per_minute == 10.0


def test_the_bucket_still_filling_is_partial_and_rated_over_what_it_covered() -> None:
    now = T0 + timedelta(minutes=12)  # the third 5-minute bucket has covered 2 minutes
    rate = dial_rate({0: 100, 1: 100, 2: 40}, T0, 300, 3, now)
    assert [p.partial for p in rate] == [False, False, True]
    assert rate[2].per_minute == 20.0  # 40 in 2 minutes, not 40 in 5 (a false drop to 8)
    # Seconds into a minute bucket, 2 calls are not 40/min: at least a minute is assumed.
    young = dial_rate({0: 2}, T0, 60, 1, T0 + timedelta(seconds=3))
    assert young[0].partial and young[0].per_minute == 2.0
    drawn = chart(rate)
    assert drawn.partial == [False, False, True]
    assert len(drawn.polyline.split()) == 2 and len(drawn.partial_line.split()) == 2


def test_chart_keeps_every_point_inside_the_axis() -> None:
    rate = dial_rate({0: 42, 1: 7, 3: 0}, T0, 60, 4, LATER)
    drawn = chart(rate, width=400, height=200)
    assert drawn.y_max == nice_ceiling(42.0) == 50.0
    ys = [y for _, y in drawn.points]
    assert min(ys) >= PAD_Y and max(ys) == 200 - PAD_Y  # zero sits on the x axis, the peak below the top
    xs = [x for x, _ in drawn.points]
    assert xs == sorted(xs) and xs[0] == PAD_X and xs[-1] == 400 - PAD_X
    assert [label for _, label in drawn.ticks] == ["0", "25", "50"]
    assert drawn.total == 49 and drawn.last == T0 + timedelta(minutes=4)


@given(
    st.integers(min_value=0, max_value=10 * 86400),
    st.integers(min_value=0, max_value=400 * 86400),
)
def test_any_span_fits_in_the_bucket_budget(offset_s: int, span_s: int) -> None:
    first = T0 + timedelta(seconds=offset_s)
    last = first + timedelta(seconds=span_s)
    width = bucket_width(first, last)
    start = align(first, width)
    n = buckets_between(start, last, width)
    assert start <= first < start + timedelta(seconds=width)
    assert start + timedelta(seconds=width * n) > last  # the last attempt is inside the last bucket
    assert n <= MAX_BUCKETS or width == 86400


def test_nice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 1.5, 7, 12, 99)] == [1.0, 0.5, 1.0, 2.0, 10.0, 20.0, 100.0]
