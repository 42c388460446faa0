"""Validation and compilation of the SPEC 5 fields (timing/spec.py): parsing, zone resolution, layering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outdial.services.timing.rules import DailyWindow
from outdial.services.timing.spec import (
    SpecError,
    TimingFields,
    callee_zones,
    compile_rules,
    load_job_spec,
    parse_days,
    parse_hhmm,
    parse_hours,
    start_instant,
)

NEW_YORK_NUMBER = "+12125550123"
NO_ZONE_NUMBER = "+80012345678"


def rules_of(**fields: Any) -> Any:
    spec = load_job_spec({"to_number": NEW_YORK_NUMBER, **fields})
    return compile_rules(spec, spec.to_number, default_timezone="UTC", default_callee_hours="08:00-21:00")


# ---------------------------------------------------------------- times of day


@given(hour=st.integers(0, 23), minute=st.integers(0, 59), padded=st.booleans())
def test_every_time_of_day_parses_to_its_minutes(hour: int, minute: int, padded: bool) -> None:
    text = f"{hour:02d}:{minute:02d}" if padded else f"{hour}:{minute:02d}"
    assert parse_hhmm(text) == hour * 60 + minute


@pytest.mark.parametrize("text", ["24:00", "24:01", "25:00", "12:60", "12", "12:5", "noon", "", " 9:00x", "-1:00"])
def test_malformed_times_of_day_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(text)


def test_2400_only_where_an_end_is_meant() -> None:
    assert parse_hhmm("24:00", allow_2400=True) == 1440
    with pytest.raises(ValueError):
        parse_hhmm("24:00")


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("08:00-21:00", DailyWindow(480, 1260)),
        ("22:00-06:00", DailyWindow(1320, 360)),  # overnight
        ("22:00-00:00", DailyWindow(1320, 1440)),  # to the next midnight
        ("22:00-24:00", DailyWindow(1320, 1440)),
        ("00:00-24:00", DailyWindow(0, 1440)),  # a whole day
        (" 8:00 - 9:30 ", DailyWindow(480, 570)),
    ],
)
def test_callee_hours_spans(text: str, window: DailyWindow) -> None:
    assert parse_hours(text) == window


@pytest.mark.parametrize("text", ["08:00-08:00", "00:00-00:00", "08:00", "08:00-09:00-10:00", "8-21", "24:00-08:00"])
def test_bad_callee_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(text)


@settings(max_examples=200)
@given(lo=st.integers(0, 1439), hi=st.integers(0, 1440))
def test_window_from_min_and_max(lo: int, hi: int) -> None:
    """min == max (as written) is invalid; otherwise the window keeps both, 00:00 as an end meaning 24:00."""
    fields = {"min_trigger_time": f"{lo // 60:02d}:{lo % 60:02d}", "max_trigger_time": f"{hi // 60:02d}:{hi % 60:02d}"}
    if lo == hi:
        with pytest.raises(SpecError) as caught:
            rules_of(**fields)
        assert caught.value.field == "max_trigger_time"
    else:
        assert rules_of(**fields).window == DailyWindow(lo, hi or 1440)


@pytest.mark.parametrize(
    ("fields", "window"),
    [
        ({"min_trigger_time": "09:00"}, DailyWindow(540, 1440)),  # a missing max is 24:00
        ({"max_trigger_time": "17:00"}, DailyWindow(0, 1020)),  # a missing min is 00:00
        ({"min_trigger_time": "00:00"}, DailyWindow(0, 1440)),
        ({"max_trigger_time": "24:00"}, DailyWindow(0, 1440)),
        ({}, None),
        ({"days_of_week": ["mon"]}, None),
    ],
)
def test_missing_bounds(fields: dict[str, Any], window: DailyWindow | None) -> None:
    rules = rules_of(callee_hours=None, **fields)
    assert rules.window == window
    assert rules.restricted == bool(fields)


# ---------------------------------------------------------------- days of week


@pytest.mark.parametrize(
    ("value", "days"),
    [
        (["mon", "Tuesday", "SUN"], {1, 2, 7}),
        ([1, 2, 3, 4, 5], {1, 2, 3, 4, 5}),
        ([0], {7}),  # 0 is Sunday, as in cron
        ([7], {7}),
        ("mon, fri", {1, 5}),
        ("6,7", {6, 7}),
        (None, None),
    ],
)
def test_days_of_week_forms(value: Any, days: set[int] | None) -> None:
    assert parse_days(value) == (None if days is None else frozenset(days))


@pytest.mark.parametrize("value", [[], [8], [-1], ["funday"], [True], [1.5], ""])
def test_bad_days_of_week(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_days(value)


# ---------------------------------------------------------------- zones


def test_zone_resolution_order() -> None:
    spec = load_job_spec({"to_number": NEW_YORK_NUMBER})
    assert compile_rules(spec, NEW_YORK_NUMBER).zones == (ZoneInfo("UTC"),)
    assert compile_rules(spec, NEW_YORK_NUMBER, default_timezone="Asia/Kolkata").zones == (ZoneInfo("Asia/Kolkata"),)
    given_zone = load_job_spec({"to_number": NEW_YORK_NUMBER, "timezone": "Asia/Kathmandu"})
    assert compile_rules(given_zone, NEW_YORK_NUMBER, default_timezone="Asia/Kolkata").zones == (
        ZoneInfo("Asia/Kathmandu"),
    )


def test_callee_zone_from_the_number() -> None:
    assert rules_of(timezone="callee").zones == (ZoneInfo("America/New_York"),)
    uk_mobile = load_job_spec({"to_number": "+447911123456", "timezone": "callee"})
    zones = compile_rules(uk_mobile, uk_mobile.to_number).zones
    assert ZoneInfo("Europe/London") in zones and len(zones) > 1


def test_callee_hours_use_the_number_zones_not_the_job_zone() -> None:
    assert rules_of(timezone="Asia/Tokyo").callee_zones == (ZoneInfo("America/New_York"),)


def test_number_without_a_zone_reads_callee_hours_in_the_job_zone() -> None:
    assert callee_zones(NO_ZONE_NUMBER) == ()
    spec = load_job_spec({"to_number": NO_ZONE_NUMBER, "timezone": "Europe/London"})
    assert compile_rules(spec, NO_ZONE_NUMBER).callee_zones == (ZoneInfo("Europe/London"),)


def test_callee_without_a_known_zone_is_an_error_not_call_anyway() -> None:
    spec = load_job_spec({"to_number": NO_ZONE_NUMBER, "timezone": "callee"})
    with pytest.raises(SpecError) as caught:
        compile_rules(spec, NO_ZONE_NUMBER)
    assert caught.value.field == "timezone"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../../etc/passwd", "EST5EDT ", "america/new_york"])
def test_unknown_zone_names_are_errors(name: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_job_spec({"to_number": NEW_YORK_NUMBER, "timezone": name})
    assert caught.value.field == "timezone"


def test_unknown_default_zone_is_an_error_too() -> None:
    spec = load_job_spec({"to_number": NEW_YORK_NUMBER})
    with pytest.raises(SpecError) as caught:
        compile_rules(spec, NEW_YORK_NUMBER, default_timezone="Nowhere/Land")
    assert caught.value.field == "timezone"


# ---------------------------------------------------------------- callee hours, retries, gaps


def test_callee_hours_absent_null_custom() -> None:
    assert rules_of().callee_hours == DailyWindow(480, 1260)
    assert rules_of(callee_hours=None).callee_hours is None
    assert rules_of(callee_hours="09:30-18:00").callee_hours == DailyWindow(570, 1080)
    spec = load_job_spec({"to_number": NEW_YORK_NUMBER})
    assert compile_rules(spec, NEW_YORK_NUMBER, default_callee_hours=None).callee_hours is None


@given(gaps=st.lists(st.integers(0, 10_000), min_size=1, max_size=10), retry=st.integers(1, 10))
def test_gap_k_is_the_kth_entry_and_the_last_repeats(gaps: list[int], retry: int) -> None:
    rules = rules_of(number_of_retries=10, gap_between_retries=gaps)
    assert rules.gap(retry).total_seconds() == 60 * gaps[min(retry, len(gaps)) - 1]


def test_single_gap_and_default_gap() -> None:
    assert rules_of(number_of_retries=3, gap_between_retries=45).gap(3).total_seconds() == 45 * 60
    spec = load_job_spec({"to_number": NEW_YORK_NUMBER, "number_of_retries": 2})
    assert compile_rules(spec, NEW_YORK_NUMBER, default_gap_minutes=12).gap(2).total_seconds() == 12 * 60
    assert rules_of().retries == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"number_of_retries": 11}, "number_of_retries"),
        ({"number_of_retries": -1}, "number_of_retries"),
        ({"gap_between_retries": -1}, "gap_between_retries"),
        ({"gap_between_retries": [0, -1]}, "gap_between_retries"),
        ({"gap_between_retries": 1.5}, "gap_between_retries"),
        ({"priority": -101}, "priority"),
        ({"schedule_at": "2026-13-01T00:00:00"}, "schedule_at"),
        ({"to_number": "+1 212 555"}, "to_number"),
        ({"extra": 1}, "extra"),
    ],
)
def test_errors_name_the_top_level_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_job_spec({"to_number": NEW_YORK_NUMBER, **fields})
    assert caught.value.field == field
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- layering (campaign -> lead -> job)


def test_upper_layer_wins_and_explicit_null_callee_hours_is_kept() -> None:
    campaign = TimingFields.model_validate({"timezone": "Europe/London", "min_trigger_time": "09:00"})
    job = TimingFields.model_validate({"min_trigger_time": "10:00", "callee_hours": None})
    merged = job.over(campaign)
    assert merged.timezone == "Europe/London"
    assert merged.min_trigger_time == "10:00"
    assert merged.callee_hours is None
    assert TimingFields().over(campaign).callee_hours == "default"


# ---------------------------------------------------------------- rule 2: start


NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "start"),
    [
        ({}, NOW),
        ({"schedule_at": "2026-12-01T12:00:00", "timezone": "America/New_York"}, datetime(2026, 12, 1, 17, tzinfo=UTC)),
        ({"schedule_at": "2026-12-01T12:00:00+05:45"}, datetime(2026, 12, 1, 6, 15, tzinfo=UTC)),
        ({"schedule_at": "2026-12-01T12:00:00", "timezone": "callee"}, datetime(2026, 12, 1, 17, tzinfo=UTC)),
        # Several callee zones: a naive schedule_at is UTC.
        (
            {"schedule_at": "2026-12-01T12:00:00", "timezone": "callee", "to_number": "+17095550123"},
            datetime(2026, 12, 1, 12, tzinfo=UTC),
        ),
        ({"schedule_at": "2026-03-08T02:00:00", "timezone": "America/New_York"}, datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ],
)
def test_start_instant(fields: dict[str, Any], start: datetime) -> None:
    spec = load_job_spec({"to_number": NEW_YORK_NUMBER, **fields})
    rules = compile_rules(spec, spec.to_number)
    assert start_instant(spec, rules, NOW) == start
