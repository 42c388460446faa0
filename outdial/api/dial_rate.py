"""The campaign page's chart, computed: calls per minute over the campaign's whole span, as SVG.

Honest by construction:

- buckets are at least one minute wide and aligned to the clock, so a one-minute bucket's
  value *is* the number of calls placed in that minute (never a 10 s count times six);
  a wider bucket shows its real count divided by its minutes (an average, said so);
- the counts come from the database, grouped there, over every attempt of the campaign
  (no sample, no row limit);
- a bucket the clock has not finished yet is *partial*: its rate is over the time it has
  covered so far, and it is drawn apart (hollow point, dashed line), not as a drop;
- the y axis starts at 0 and ends at a round number at or above the highest point, with
  its labels inside the drawing.

Pure functions, no I/O: counts in, points and a polyline out. The page draws them
server-side as inline SVG, so it works with nothing fetched from outside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Bucket widths tried in order; the first that gives at most MAX_BUCKETS buckets is used.
BUCKET_WIDTHS_S = (60, 120, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
MAX_BUCKETS = 90


def bucket_width(first: datetime, last: datetime) -> int:
    """Seconds per bucket for a span: the narrowest that needs at most MAX_BUCKETS buckets."""
    for width in BUCKET_WIDTHS_S:
        if align(last, width) - align(first, width) < timedelta(seconds=width * MAX_BUCKETS):
            return width
    return BUCKET_WIDTHS_S[-1]


def align(instant: datetime, width_s: int) -> datetime:
    """The start of the clock-aligned bucket holding ``instant`` (minutes on the minute, hours on the hour)."""
    epoch = instant.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(epoch - epoch % width_s, UTC)


@dataclass(frozen=True)
class RatePoint:
    start: datetime
    count: int  # calls placed in the bucket (so far, when partial)
    width_s: int
    covered_s: float  # the part of the bucket the clock has passed: width_s unless partial

    @property
    def partial(self) -> bool:
        return self.covered_s < self.width_s

    @property
    def per_minute(self) -> float:
        # A partial bucket's rate is over what it has covered, but at least a minute: a
        # bucket seconds old would otherwise turn 2 calls into 40/min.
        return self.count * 60 / max(self.covered_s, min(60.0, self.width_s))


def dial_rate(counts: Mapping[int, int], first: datetime, width_s: int, n: int, now: datetime) -> list[RatePoint]:
    """``n`` buckets of ``width_s`` from ``first`` (aligned), empty ones included, from the
    database's count per bucket index; the bucket holding ``now`` is partial."""
    points = []
    for i in range(n):
        start = first + timedelta(seconds=i * width_s)
        elapsed = (now - start).total_seconds()
        # Only the bucket holding ``now`` is partial (one wholly ahead of the clock is skew, not data to come).
        covered = elapsed if 0 <= elapsed < width_s else float(width_s)
        points.append(RatePoint(start, counts.get(i, 0), width_s, covered))
    return points


def buckets_between(first: datetime, last: datetime, width_s: int) -> int:
    return int((align(last, width_s) - first).total_seconds() // width_s) + 1


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    points: list[tuple[float, float]]  # SVG coordinates, y grows downwards
    partial: list[bool]  # per point: its bucket is not over yet
    y_max: float
    first: datetime | None
    last: datetime | None  # the end of the last bucket
    width_s: int = 60
    total: int = 0

    @property
    def marked(self) -> list[tuple[float, float, bool]]:
        """Each point with whether its bucket is still filling."""
        return [(x, y, part) for (x, y), part in zip(self.points, self.partial, strict=True)]

    @property
    def full_points(self) -> list[tuple[float, float]]:
        return [p for p, part in zip(self.points, self.partial, strict=True) if not part]

    @property
    def polyline(self) -> str:
        """The line through the finished buckets."""
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.full_points)

    @property
    def partial_line(self) -> str:
        """The dashed segment from the last finished bucket to the one still filling."""
        if not self.points or not self.partial[-1]:
            return ""
        tail = self.points[-2:] if len(self.points) > 1 and not self.partial[-2] else self.points[-1:]
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in tail)

    @property
    def area(self) -> str:
        """The finished buckets' line closed down to the x axis, for a filled shape under it."""
        full = self.full_points
        if not full:
            return ""
        base = self.height - PAD_Y
        return f"{full[0][0]:.1f},{base} {self.polyline} {full[-1][0]:.1f},{base}"

    @property
    def ticks(self) -> list[tuple[float, str]]:
        """y-axis labels (SVG y, text) at 0, half and the top."""
        inner_h = self.height - 2 * PAD_Y
        return [(PAD_Y + inner_h * (1 - f), number(self.y_max * f)) for f in (0.0, 0.5, 1.0)]

    @property
    def bucket_label(self) -> str:
        return "1 minute" if self.width_s == 60 else f"{self.width_s // 60} minutes"


# Room for the axis labels: left for the rate's digits, top and bottom for the times.
PAD_X = 56
PAD_Y = 24


def number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) or value >= 10 else f"{value:.1f}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at least ``value``: a y axis that reads well."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    return float(next(m * exp for m in (1, 2, 5, 10) if m * exp >= value))


def chart(rate: Sequence[RatePoint], width: int = 900, height: int = 240) -> Chart:
    if not rate:
        return Chart(width, height, [], [], 1.0, None, None)
    y_max = nice_ceiling(max(p.per_minute for p in rate))
    inner_w, inner_h = width - 2 * PAD_X, height - 2 * PAD_Y
    step = inner_w / max(1, len(rate) - 1)
    points = [
        (PAD_X + (i * step if len(rate) > 1 else inner_w / 2), PAD_Y + inner_h * (1 - p.per_minute / y_max))
        for i, p in enumerate(rate)
    ]
    end = rate[-1].start + timedelta(seconds=rate[-1].width_s)
    return Chart(
        width,
        height,
        points,
        [p.partial for p in rate],
        y_max,
        rate[0].start,
        end,
        rate[0].width_s,
        sum(p.count for p in rate),
    )
