"""SPEC 5 timing rules against an independent reference oracle (hypothesis).

The oracle never looks at window instances as intervals. It answers one
question, ``allowed(instant)``, by reading the instant's wall clock in every
zone, and builds the whole expected plan from that question alone:

* A wall-clock bound B stands for the first instant whose wall clock reads B
  or later (SPEC 5.3: a bound in a spring-forward gap moves to the first valid
  instant after it, an ambiguous one takes its first occurrence). So an instant
  t is at or past B exactly when the highest wall-clock reading seen up to t is
  at or past B. Outside a fall-back fold that reading is t's own wall clock;
  inside the second pass of a repeated hour it is the reading just before the
  clocks went back (:func:`running_wall`).
* Every bound generated here is a multiple of 5 local minutes, every zone used
  is offset by a multiple of 15 minutes, and every 2026 transition of these
  zones falls on a quarter hour UTC. ``allowed`` is therefore constant on each
  UTC block [5k, 5k+5) minutes, and scanning those blocks finds every window
  edge exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_timezone

from outdial.services.timing.rules import Closed, Due, plan, recheck
from outdial.services.timing.spec import compile_rules, load_job_spec, start_instant

ZONES = (
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/St_Johns",  # -03:30 / -02:30
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kathmandu",  # +05:45
    "UTC",
)
NUMBERS = (
    "+12125550123",  # New York, one zone
    "+442079460000",  # London landline, one zone
    "+447911123456",  # UK mobile: London, Jersey, Guernsey, Isle of Man
    "+919876543210",  # India
    "+97714220000",  # Nepal (+05:45)
    "+6435501234",  # New Zealand
    "+61255501234",  # Sydney
    "+17095550123",  # Newfoundland area code: Halifax and St John's
    "+18005550199",  # US toll-free: every NANP zone, Guam to Pago Pago
    "+80012345678",  # international freephone: no zone at all
)
STEP = timedelta(minutes=5)
HORIZON = timedelta(days=8)  # rule 4: a window must open within 8 days after the start
CARRY_OVER_HORIZON = timedelta(days=15)  # rule 6 sets none; the code searches 15 days, enough for weekly patterns
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Starts cluster around the 2026 DST changes of the zones above, where bugs live.
TRANSITIONS = (
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # New York spring forward
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # New York fall back
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # London spring forward
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # London fall back
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),  # Lord Howe fall back (02:00 -> 01:30)
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),  # Lord Howe spring forward (02:00 -> 02:30)
    datetime(2026, 4, 4, 14, 0, tzinfo=UTC),  # Chatham fall back
    datetime(2026, 9, 26, 14, 0, tzinfo=UTC),  # Chatham spring forward
    datetime(2026, 3, 8, 5, 30, tzinfo=UTC),  # St John's spring forward
)


# ---------------------------------------------------------------- the oracle


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@cache
def number_zones(number: str) -> tuple[str, ...]:
    names = phone_timezone.time_zones_for_number(phonenumbers.parse(number, None))
    return tuple(sorted({n for n in names if n != "Etc/Unknown"}))


def wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def running_wall(instant: datetime, tz: ZoneInfo) -> datetime:
    """The highest wall-clock reading in ``tz`` up to ``instant`` (folds are at most 1 h)."""
    if instant.astimezone(tz).fold == 0:
        return wall(instant, tz)
    return max(wall(instant - timedelta(minutes=k), tz) for k in range(0, 181))


def in_daily(instant: datetime, tz: ZoneInfo, lo: int, hi: int, days: frozenset[int] | None) -> bool:
    """Whether ``instant`` lies in ``[D lo, D hi)`` (``hi <= lo``: ``D+1 hi``) for an allowed local date D."""
    reading = running_wall(instant, tz)
    span_end = hi if hi > lo else hi + 1440
    for owner in (reading.date() - timedelta(days=1), reading.date()):
        if days is not None and owner.isoweekday() not in days:
            continue
        midnight = datetime.combine(owner, time())
        if midnight + timedelta(minutes=lo) <= reading < midnight + timedelta(minutes=span_end):
            return True
    return False


@dataclass(frozen=True)
class Oracle:
    job_zones: tuple[ZoneInfo, ...]
    window: tuple[int, int] | None  # None: no window restriction (or days only)
    days: frozenset[int] | None
    callee_zones: tuple[ZoneInfo, ...]
    callee_hours: tuple[int, int] | None

    def allowed(self, instant: datetime) -> bool:
        if self.window is not None or self.days is not None:
            lo, hi = self.window or (0, 1440)
            if not all(in_daily(instant, tz, lo, hi, self.days) for tz in self.job_zones):
                return False
        if self.callee_hours is not None:
            lo, hi = self.callee_hours
            return all(in_daily(instant, tz, lo, hi, None) for tz in self.callee_zones)
        return True

    def first_allowed(self, instant: datetime, horizon: timedelta = HORIZON) -> datetime | None:
        """max(instant, open of the first effective window containing or opening within ``horizon`` after it)."""
        if self.allowed(instant):
            return instant
        probe = ceil_to_step(instant)
        while probe <= instant + horizon:
            if self.allowed(probe):
                return probe
            probe += STEP
        return None

    def continuous(self, start: datetime, end: datetime) -> bool:
        """Whether every instant of ``[start, end]`` is allowed: both lie in one effective window."""
        probe = ceil_to_step(start)
        while probe <= end:
            if not self.allowed(probe):
                return False
            probe += STEP
        return self.allowed(start) and self.allowed(end)


def ceil_to_step(instant: datetime) -> datetime:
    past = (instant - EPOCH) % STEP
    return instant if not past else instant + (STEP - past)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def minutes_of(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def gap_for(gaps: int | list[int], retry: int) -> timedelta:
    if isinstance(gaps, int):
        return timedelta(minutes=gaps)
    return timedelta(minutes=gaps[min(retry, len(gaps)) - 1])


def first_at_or_after_wall(local: datetime, tz: ZoneInfo) -> datetime:
    """Rule 2 read independently: the first instant whose wall clock reads ``local`` or later."""
    guess = datetime.combine(local.date(), time(), tzinfo=UTC) - timedelta(hours=15)
    while running_wall(guess, tz) < local:
        guess += timedelta(minutes=1)
    # Back off to the exact second (``local`` may carry seconds).
    while running_wall(guess - timedelta(seconds=1), tz) >= local:
        guess -= timedelta(seconds=1)
    return guess


def oracle_for(spec: dict[str, Any]) -> Oracle:
    number = spec["to_number"]
    from_number = tuple(zone(n) for n in number_zones(number))
    name = spec.get("timezone") or "UTC"
    job_zones = from_number if name == "callee" else (zone(name),)
    window = None
    if "min_trigger_time" in spec or "max_trigger_time" in spec:
        lo = minutes_of(spec.get("min_trigger_time", "00:00"))
        hi = minutes_of(spec.get("max_trigger_time", "24:00"))
        window = (lo, hi)
    days = frozenset(spec["days_of_week"]) if "days_of_week" in spec else None
    hours_text = spec.get("callee_hours", "08:00-21:00")
    hours = None if hours_text is None else tuple(minutes_of(p) for p in hours_text.split("-"))
    return Oracle(job_zones, window, days, from_number or job_zones, hours)  # type: ignore[arg-type]


def expected_plan(spec: dict[str, Any], start: datetime, fail_after: timedelta) -> tuple[list[datetime], str]:
    """The plan, computed from ``allowed`` and SPEC 5.5 / 5.6 alone."""
    oracle = oracle_for(spec)
    first = oracle.first_allowed(start)
    if first is None:
        return [], "rejected"
    attempts = [first]
    for retry in range(1, spec.get("number_of_retries", 0) + 1):
        instant = attempts[-1] + fail_after + gap_for(spec.get("gap_between_retries", 30), retry)
        if oracle.continuous(attempts[-1], instant):
            attempts.append(instant)
        elif not spec.get("carry_over", False):
            return attempts, "expired"
        else:
            moved = oracle.first_allowed(instant, CARRY_OVER_HORIZON)
            if moved is None:
                return attempts, "rejected"
            attempts.append(moved)
    return attempts, "exhausted"


# ---------------------------------------------------------------- the code under test


def actual_plan(spec: dict[str, Any], now: datetime, fail_after: timedelta) -> tuple[list[datetime], str, datetime]:
    job = load_job_spec(spec)
    rules = compile_rules(job, job.to_number, default_timezone="UTC", default_callee_hours="08:00-21:00")
    start = start_instant(job, rules, now)
    result = plan(rules, start, fail_after)
    return result.attempts, result.outcome, start


# ---------------------------------------------------------------- strategies

five_minutes = st.integers(0, 287).map(lambda n: n * 5)
# 01:00-03:55 local: where the clocks of the zones above change, so bounds land in gaps and folds.
near_changes = st.integers(12, 47).map(lambda n: n * 5)
bounds = st.one_of(five_minutes, near_changes)
# The 2026 changes per zone (UTC), for the DST-focused property.
CHANGES = {
    "America/New_York": (TRANSITIONS[0], TRANSITIONS[1]),
    "Europe/London": (TRANSITIONS[2], TRANSITIONS[3]),
    "Australia/Lord_Howe": (TRANSITIONS[4], TRANSITIONS[5]),
    "Pacific/Chatham": (TRANSITIONS[6], TRANSITIONS[7]),
    "America/St_Johns": (TRANSITIONS[8], datetime(2026, 11, 1, 4, 30, tzinfo=UTC)),
}


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    base = draw(st.sampled_from((*TRANSITIONS, None)))
    if base is None:
        base = EPOCH + timedelta(minutes=5 * draw(st.integers(0, 365 * 288)))
    moved = base + timedelta(minutes=5 * draw(st.integers(-3 * 288, 3 * 288)))
    return moved + timedelta(seconds=draw(st.sampled_from((0, 0, 0, 17, 59))))


@st.composite
def job_specs(
    draw: st.DrawFn,
    zone_names: Sequence[str | None] = (*ZONES, "callee", None),
    numbers: Sequence[str] = NUMBERS,
) -> dict[str, Any]:
    number = draw(st.sampled_from(numbers))
    spec: dict[str, Any] = {"to_number": number}
    zone_choice = draw(st.sampled_from(zone_names))
    if zone_choice == "callee" and not number_zones(number):
        zone_choice = None  # "callee" without a known zone is refused; tested elsewhere
    if zone_choice is not None:
        spec["timezone"] = zone_choice
    shape = draw(st.sampled_from(("none", "min", "max", "both", "both")))
    if shape in ("min", "both"):
        spec["min_trigger_time"] = hhmm(draw(bounds))
    if shape in ("max", "both"):
        spec["max_trigger_time"] = draw(st.one_of(bounds.map(hhmm), st.just("24:00")))
    lo = minutes_of(spec.get("min_trigger_time", "00:00"))
    if shape != "none" and lo == minutes_of(spec.get("max_trigger_time", "24:00")):
        spec["max_trigger_time"] = hhmm((lo + 5 * draw(st.integers(1, 287))) % 1440)
    if draw(st.booleans()):
        spec["days_of_week"] = sorted(draw(st.sets(st.integers(1, 7), min_size=1)))
    hours = draw(st.sampled_from(("default", "off", "custom")))
    if hours == "off":
        spec["callee_hours"] = None
    elif hours == "custom":
        start, end = draw(bounds), draw(bounds)
        end = end if end != start else (start + 5 * draw(st.integers(1, 287))) % 1440
        spec["callee_hours"] = f"{hhmm(start)}-{hhmm(end)}"
    spec["carry_over"] = draw(st.booleans())
    spec["number_of_retries"] = draw(st.integers(0, 10))
    spec["gap_between_retries"] = draw(
        st.one_of(st.integers(0, 1500), st.lists(st.integers(0, 1500), min_size=1, max_size=4))
    )
    return spec


def with_schedule_at(draw: st.DrawFn, spec: dict[str, Any]) -> datetime:
    """Give ``spec`` a ``schedule_at`` (absolute, or wall clock of its one zone) and return its expected start."""
    instant = draw(instants())
    name = spec.get("timezone") or "UTC"
    zones = number_zones(spec["to_number"]) if name == "callee" else (name,)
    form = draw(st.sampled_from(("offset", "utc_z", "wall")))
    if form == "offset":
        spec["schedule_at"] = instant.astimezone(zone(draw(st.sampled_from(ZONES)))).isoformat()
        return instant
    if form == "utc_z":
        spec["schedule_at"] = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
        return instant
    if len(zones) > 1:  # SPEC 5.1: without an offset and several zones, read as UTC
        spec["schedule_at"] = instant.replace(tzinfo=None).isoformat()
        return instant
    # Wall clock; from a naive UTC reading, so it also lands in gaps and folds.
    local = instant.replace(tzinfo=None)
    spec["schedule_at"] = local.isoformat()
    return first_at_or_after_wall(local, zone(zones[0]))


PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def assert_invariants(
    spec: dict[str, Any], attempts: Sequence[datetime], outcome: str, start: datetime, fail_after: timedelta
) -> None:
    oracle = oracle_for(spec)
    retries = spec.get("number_of_retries", 0)
    assert len(attempts) <= retries + 1
    assert (outcome == "exhausted") == (len(attempts) == retries + 1)
    assert (outcome == "rejected") == (not attempts)
    for at in attempts:
        assert at.tzinfo is not None
        assert oracle.allowed(at), f"{at} is outside every effective window"
    for k, (before, after) in enumerate(pairwise(attempts), start=1):
        earliest = before + fail_after + gap_for(spec.get("gap_between_retries", 30), k)
        assert after >= earliest >= before  # never backwards, gaps in elapsed time
        if oracle.continuous(before, earliest):
            assert after == earliest
    if attempts:
        assert start <= attempts[0] <= start + HORIZON


# ---------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(data=st.data(), spec=job_specs(), fail_after_s=st.sampled_from((0, 0, 45, 300, 3600, 7200)))
def test_plan_matches_the_reference_oracle(data: st.DataObject, spec: dict[str, Any], fail_after_s: int) -> None:
    expected_start = with_schedule_at(data.draw, spec)
    fail_after = timedelta(seconds=fail_after_s)

    attempts, outcome, start = actual_plan(spec, NOW, fail_after)

    assert start == expected_start, spec
    assert_invariants(spec, attempts, outcome, start, fail_after)
    assert (attempts, outcome) == expected_plan(spec, start, fail_after), spec
    event(f"{outcome} after {len(attempts)} attempt(s)" if outcome != "exhausted" else "exhausted")


@PROPERTY_SETTINGS
@given(data=st.data(), zone_name=st.sampled_from(sorted(CHANGES)), fail_after_s=st.sampled_from((0, 600, 3600)))
def test_plan_matches_the_oracle_across_dst_changes(data: st.DataObject, zone_name: str, fail_after_s: int) -> None:
    """Windows and callee hours with bounds at 01:00-03:55 local, starting in the day and a half before a change."""
    spec = data.draw(job_specs(zone_names=(zone_name,), numbers=("+80012345678",)))  # callee hours in that zone too
    change = data.draw(st.sampled_from(CHANGES[zone_name]))
    start = change + timedelta(minutes=5 * data.draw(st.integers(-36 * 12, 6 * 12)))
    spec["schedule_at"] = start.isoformat()
    fail_after = timedelta(seconds=fail_after_s)

    attempts, outcome, actual_start = actual_plan(spec, NOW, fail_after)

    assert actual_start == start
    assert_invariants(spec, attempts, outcome, start, fail_after)
    assert (attempts, outcome) == expected_plan(spec, start, fail_after), spec


@PROPERTY_SETTINGS
@given(spec=job_specs(), now=instants())
def test_without_schedule_at_the_start_is_now(spec: dict[str, Any], now: datetime) -> None:
    attempts, outcome, start = actual_plan(spec, now, timedelta(0))
    assert start == now
    oracle = oracle_for(spec)
    first = oracle.first_allowed(now)
    if first is None:
        assert (attempts, outcome) == ([], "rejected")
    else:
        assert attempts[0] == first
        if not oracle.allowed(now):  # it waited for a window: it opens exactly then
            assert not oracle.allowed(first - timedelta(seconds=1))


@PROPERTY_SETTINGS
@given(data=st.data(), spec=job_specs(), delay_minutes=st.integers(0, 3 * 1440))
def test_recheck_at_dispatch_never_dials_outside_a_window(
    data: st.DataObject, spec: dict[str, Any], delay_minutes: int
) -> None:
    """Rule 7: a job claimed ``delay`` late keeps its window, carries over, or expires."""
    with_schedule_at(data.draw, spec)
    job = load_job_spec(spec)
    rules = compile_rules(job, job.to_number)
    first = plan(rules, start_instant(job, rules, NOW), timedelta(0)).attempts
    if not first:
        return
    due, oracle = first[0], oracle_for(spec)
    claimed = due + timedelta(minutes=delay_minutes)

    step = recheck(rules, due, claimed)

    if oracle.continuous(due, claimed):
        assert isinstance(step, Due) and step.at == claimed
    elif spec["carry_over"]:
        moved = oracle.first_allowed(claimed, CARRY_OVER_HORIZON)
        if moved is None:  # e.g. a sliver of overlap that a DST change closed for months
            assert isinstance(step, Closed) and step.outcome == "rejected"
        else:
            assert isinstance(step, Due) and step.at == moved
    else:
        assert isinstance(step, Closed) and step.outcome == "expired"
    if isinstance(step, Due):
        assert step.at >= claimed and oracle.allowed(step.at)
        assert step.window[0] <= step.at < step.window[1]


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.one_of(st.integers(0, 600), st.lists(st.integers(0, 600), min_size=1, max_size=5)),
    retries=st.integers(1, 10),
    fail_after_s=st.integers(0, 600),
    start=instants(),
)
def test_gaps_are_elapsed_minutes_with_the_last_entry_repeating(
    gaps: int | list[int], retries: int, fail_after_s: int, start: datetime
) -> None:
    """With no restriction at all every retry lands exactly end-of-attempt + gap_k, across any DST change."""
    spec = {
        "to_number": "+12125550123",
        "timezone": "America/New_York",
        "callee_hours": None,
        "number_of_retries": retries,
        "gap_between_retries": gaps,
        "schedule_at": start.isoformat(),
    }
    attempts, outcome, _ = actual_plan(spec, NOW, timedelta(seconds=fail_after_s))
    assert outcome == "exhausted"
    assert attempts[0] == start
    for k in range(1, retries + 1):
        assert attempts[k] - attempts[k - 1] == timedelta(seconds=fail_after_s) + gap_for(gaps, k)


@pytest.mark.parametrize("number", NUMBERS)
def test_oracle_zones_match_the_numbers_documented_here(number: str) -> None:
    """Guards the oracle's own premise: every zone in play is offset by whole quarter hours."""
    names = number_zones(number) or ("UTC",)
    for name in (*names, *ZONES):
        tz = zone(name)
        for moment in (datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC)):
            offset = moment.astimezone(tz).utcoffset()
            assert offset is not None and offset % timedelta(minutes=15) == timedelta(0)


def test_running_wall_reads_the_clock_before_it_went_back() -> None:
    new_york = zone("America/New_York")
    second_pass = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)  # 01:15 EST, after 01:59 EDT
    assert wall(second_pass, new_york) == datetime(2026, 11, 1, 1, 15)
    assert running_wall(second_pass, new_york) >= datetime(2026, 11, 1, 1, 59)
    assert running_wall(second_pass, new_york) < datetime(2026, 11, 1, 2, 0)
    assert first_at_or_after_wall(datetime(2026, 3, 8, 2, 30), new_york) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert first_at_or_after_wall(datetime(2026, 11, 1, 1, 30), new_york) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
