"""The timing rules of SPEC 5 as plain functions: no database, no clock, no I/O.

Every instant handled here is an aware ``datetime`` in UTC. Local wall-clock
times only appear while building window instances, and are turned into
instants by :func:`wall_to_instant`, which owns the DST rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]

MINUTES_PER_DAY = 24 * 60
SEARCH_HORIZON = timedelta(days=8)
# Rule 6 puts no horizon on carry-over (the 8 days of rule 4 judge the start only). A weekly
# pattern that had a window recurs within 7 days unless a DST change empties one instance
# (e.g. Sundays 02:00-02:30 in New York on the spring-forward Sunday): 15 days always finds it.
CARRY_OVER_HORIZON = timedelta(days=15)
# Local dates are generated this far beyond the instants asked about, so that
# every interval touching the asked range is complete (any zone is within ±14 h).
_DATE_MARGIN = timedelta(days=3)


@dataclass(frozen=True)
class DailyWindow:
    """A daily span of local time in minutes; ``start > end`` runs overnight."""

    start: int  # 0..1439
    end: int  # 1..1440; 1440 is the next midnight (an end written 00:00 is passed as 1440)

    def __post_init__(self) -> None:
        if not (0 <= self.start < MINUTES_PER_DAY and 0 < self.end <= MINUTES_PER_DAY):
            raise ValueError("window bounds out of range")
        # 00:00-24:00 is a whole day, not an empty span: only equal minutes are invalid.
        if self.start == self.end:
            raise ValueError("start and end of a window must differ")


@dataclass(frozen=True)
class Rules:
    """Everything the timing rules need to know about one job, already validated."""

    zones: tuple[ZoneInfo, ...]  # the job's zone(s); several only for "callee"
    window: DailyWindow | None  # None with days=None: no restriction
    days: frozenset[int] | None  # ISO weekdays 1..7; None: every day
    callee_zones: tuple[ZoneInfo, ...]
    callee_hours: DailyWindow | None  # None: callee hours are off
    carry_over: bool = False
    retries: int = 0
    gaps: tuple[int, ...] = (0,)  # minutes; the last one repeats

    @property
    def restricted(self) -> bool:
        return self.window is not None or self.days is not None

    def gap(self, retry: int) -> timedelta:
        """The elapsed time before retry ``retry`` (1-based)."""
        return timedelta(minutes=self.gaps[min(retry, len(self.gaps)) - 1])


@dataclass(frozen=True)
class Due:
    at: datetime
    window: Interval  # the effective window the attempt belongs to


@dataclass(frozen=True)
class Closed:
    """No due time: ``expired`` (window closed without carry-over) or ``rejected``."""

    outcome: str
    reason: str


def wall_to_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant of a naive wall-clock time in ``zone``.

    A time skipped by a DST gap moves to the first valid instant after it (the
    transition itself); a time repeated by a fold takes its first occurrence.
    """
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    # Inside a gap both folds name instants on either side of the transition:
    # bisect for the earliest instant whose wall clock is past ``local``.
    other = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, other), max(first, other)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) > local:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) if hi.microsecond else hi


def _at_minute(day: date, minute: int, zone: ZoneInfo) -> datetime:
    day += timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    return wall_to_instant(datetime.combine(day, time(minute // 60, minute % 60)), zone)


def _dates(start: datetime, end: datetime) -> Iterable[date]:
    day = (start - _DATE_MARGIN).date()
    last = (end + _DATE_MARGIN).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def daily_instances(
    window: DailyWindow | None,
    days: frozenset[int] | None,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[Interval]:
    """Window instances ``[D min, D max)`` (or ``[D min, D+1 max)`` overnight) owned by allowed dates D."""
    lo, hi = (window.start, window.end) if window else (0, MINUTES_PER_DAY)
    if hi <= lo:
        hi += MINUTES_PER_DAY
    out: list[Interval] = []
    for day in _dates(start, end):
        if days is not None and day.isoweekday() not in days:
            continue
        opens, closes = _at_minute(day, lo, zone), _at_minute(day, hi, zone)
        if opens < closes:
            out.append((opens, closes))
    return merge(out)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and join intervals that overlap or touch."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def intersect(left: Sequence[Interval], right: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        a = max(left[i][0], right[j][0])
        b = min(left[i][1], right[j][1])
        if a < b:
            out.append((a, b))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def _all_zones(
    window: DailyWindow | None,
    days: frozenset[int] | None,
    zones: Sequence[ZoneInfo],
    start: datetime,
    end: datetime,
) -> list[Interval]:
    result: list[Interval] | None = None
    for zone in zones:
        inst = daily_instances(window, days, zone, start, end)
        result = inst if result is None else intersect(result, inst)
    return result or []


def effective_windows(rules: Rules, start: datetime, end: datetime) -> list[Interval]:
    """The maximal intervals of allowed instants, exact for every instant in ``[start, end]``.

    Intervals that reach the edge of what was generated are cut there; callers
    only ask about instants inside ``[start, end]``, which stay exact.
    """
    everywhere = [(start - 2 * _DATE_MARGIN, end + 2 * _DATE_MARGIN)]
    job = _all_zones(rules.window, rules.days, rules.zones, start, end) if rules.restricted else everywhere
    if rules.callee_hours is None:
        return merge(job)
    callee = _all_zones(rules.callee_hours, None, rules.callee_zones, start, end)
    return merge(intersect(job, callee))


def _containing(windows: Sequence[Interval], instant: datetime) -> Interval | None:
    for a, b in windows:
        if a <= instant < b:
            return (a, b)
    return None


def next_window(rules: Rules, instant: datetime, *, horizon: timedelta = SEARCH_HORIZON) -> Due | Closed:
    """The first effective window containing ``instant`` or opening within ``horizon`` (8 days) after it."""
    for a, b in effective_windows(rules, instant, instant + horizon):
        if b > instant and a <= instant + horizon:
            return Due(max(instant, a), (a, b))
    return Closed("rejected", "no_callable_window")


def first_attempt(rules: Rules, start: datetime, now: datetime | None = None) -> Due | Closed:
    """Rule 5: due at max(start, open) of the first window containing or after the start.

    With ``now``, a start already past meets rule 7 at once, as the scheduler would
    a moment later: if the window it falls in has closed by ``now``, the job carries
    over or expires now (``POST /calls`` and ``outdial plan`` then say the same).
    """
    step = next_window(rules, start)
    if now is not None and isinstance(step, Due) and step.at < now:
        late = recheck(rules, step.at, now)
        if isinstance(late, Closed) or late.window != step.window:
            return late
    return step


def same_window(rules: Rules, anchor: datetime, instant: datetime) -> bool:
    """Whether ``instant`` lies in the effective window that contains ``anchor``."""
    if instant < anchor:
        return False
    window = _containing(effective_windows(rules, anchor, instant), anchor)
    return window is not None and instant < window[1]


def move_on(rules: Rules, anchor: datetime, instant: datetime) -> Due | Closed:
    """Rules 6 and 7: keep ``instant`` if it is inside the current window (the one
    holding ``anchor``); otherwise carry over to the next window, or expire."""
    if same_window(rules, anchor, instant):
        window = _containing(effective_windows(rules, anchor, instant), anchor)
        assert window is not None
        return Due(instant, window)
    if not rules.carry_over:
        return Closed("expired", "window_closed")
    # The usual 8 days first: the search costs in proportion to its span.
    step = next_window(rules, instant)
    return step if isinstance(step, Due) else next_window(rules, instant, horizon=CARRY_OVER_HORIZON)


def retry_attempt(rules: Rules, retry: int, previous_due: datetime, previous_end: datetime) -> Due | Closed:
    """Rule 6: retry ``retry`` (1-based) is due ``gap`` of elapsed time after the previous attempt ended."""
    return move_on(rules, previous_due, previous_end + rules.gap(retry))


def recheck(rules: Rules, due: datetime, now: datetime) -> Due | Closed:
    """Rule 7: at claim or dial time, a job whose window has closed carries over or expires."""
    return move_on(rules, due, max(now, due))


@dataclass(frozen=True)
class Plan:
    attempts: list[datetime]
    outcome: str  # exhausted | expired | rejected
    reason: str | None = None


def plan(rules: Rules, start: datetime, fail_after: timedelta, now: datetime | None = None) -> Plan:
    """All attempts of a job whose every attempt fails ``fail_after`` after it starts (made at ``now``)."""
    step = first_attempt(rules, start, now)
    attempts: list[datetime] = []
    retry = 0
    while isinstance(step, Due):
        attempts.append(step.at)
        if retry == rules.retries:
            return Plan(attempts, "exhausted")
        retry += 1
        step = retry_attempt(rules, retry, step.at, step.at + fail_after)
    return Plan(attempts, step.outcome, step.reason)
