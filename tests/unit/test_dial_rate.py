"""The campaign page's dial-rate chart: buckets, rates and SVG coordinates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from outdial.api.dial_rate import PAD, chart, dial_rate, nice_ceiling

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def test_no_requests_no_points() -> None:
    assert dial_rate([]) == []
    assert chart([]).points == [] and chart([]).area == ""


def test_rate_per_minute_with_empty_buckets_kept() -> None:
    # 20 minutes: 60 s buckets (10 s and 30 s would give too many).
    times = [T0 + timedelta(seconds=s) for s in (0, 10, 20, 1200)]
    rate = dial_rate(times)
    assert rate[1].start - rate[0].start == timedelta(seconds=60)
    assert rate[0].per_minute == 3.0
    assert all(p.per_minute == 0 for p in rate[1:-1])
    assert rate[-1].per_minute == 1.0
    assert sum(p.per_minute for p in rate) == len(times)  # 60 s buckets: per minute == count


def test_short_bursts_use_short_buckets_scaled_to_per_minute() -> None:
    times = [T0 + timedelta(seconds=s) for s in (0, 1, 2, 65)]
    rate = dial_rate(times)
    assert rate[1].start - rate[0].start == timedelta(seconds=10)
    assert rate[0].per_minute == 18.0  # 3 in 10 s


def test_chart_puts_the_peak_under_the_nice_ceiling_and_zero_on_the_axis() -> None:
    times = [T0] * 7 + [T0 + timedelta(seconds=100)]
    drawn = chart(dial_rate(times), width=400, height=200)
    assert drawn.y_max == nice_ceiling(42.0) == 50.0
    ys = [y for _, y in drawn.points]
    assert min(ys) >= PAD and max(ys) == 200 - PAD  # zero rate sits on the x axis
    xs = [x for x, _ in drawn.points]
    assert xs == sorted(xs) and xs[0] == PAD and xs[-1] == 400 - PAD


def test_nice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 1.5, 7, 12, 99)] == [1.0, 0.5, 1.0, 2.0, 10.0, 20.0, 100.0]
