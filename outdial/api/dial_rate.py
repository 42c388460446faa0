"""The campaign page's chart, computed: requests per minute over time, as SVG coordinates.

Pure functions, no I/O: times in, points and a polyline out. The page draws
them server-side as inline SVG, so it works with nothing fetched from outside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Bucket widths tried in order; the first that gives at most MAX_BUCKETS buckets is used.
BUCKET_WIDTHS_S = (10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
MAX_BUCKETS = 40


@dataclass(frozen=True)
class RatePoint:
    start: datetime
    per_minute: float


def dial_rate(times: Sequence[datetime]) -> list[RatePoint]:
    """Requests per minute in equal buckets from the first request to the last (empty ones included)."""
    if not times:
        return []
    first, last = min(times), max(times)
    span_s = (last - first).total_seconds()
    width = next((w for w in BUCKET_WIDTHS_S if span_s / w < MAX_BUCKETS), BUCKET_WIDTHS_S[-1])
    n = int(span_s // width) + 1
    counts = [0] * n
    for t in times:
        counts[min(n - 1, int((t - first).total_seconds() // width))] += 1
    return [RatePoint(first + timedelta(seconds=i * width), c * 60 / width) for i, c in enumerate(counts)]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    points: list[tuple[float, float]]  # SVG coordinates, y grows downwards
    y_max: float
    first: datetime | None
    last: datetime | None

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)

    @property
    def area(self) -> str:
        """The polyline closed down to the x axis, for a filled shape under the line."""
        if not self.points:
            return ""
        base = self.height - PAD
        return f"{self.points[0][0]:.1f},{base} {self.polyline} {self.points[-1][0]:.1f},{base}"


PAD = 30


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at least ``value``: a y axis that reads well."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    return float(next(m * exp for m in (1, 2, 5, 10) if m * exp >= value))


def chart(rate: Sequence[RatePoint], width: int = 720, height: int = 240) -> Chart:
    if not rate:
        return Chart(width, height, [], 1.0, None, None)
    y_max = nice_ceiling(max(p.per_minute for p in rate))
    inner_w, inner_h = width - 2 * PAD, height - 2 * PAD
    step = inner_w / max(1, len(rate) - 1)
    points = [
        (PAD + (i * step if len(rate) > 1 else inner_w / 2), PAD + inner_h * (1 - p.per_minute / y_max))
        for i, p in enumerate(rate)
    ]
    return Chart(width, height, points, y_max, rate[0].start, rate[-1].start)
