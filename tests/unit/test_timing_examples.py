"""Worked examples of SPEC 5, each answer computed by hand from the SPEC text (shown in the comment).

Clocks in 2026:
  America/New_York  EST = UTC-5, EDT = UTC-4. Spring forward Sun 03-08 02:00 EST -> 03:00 EDT (07:00Z);
                    fall back Sun 11-01 02:00 EDT -> 01:00 EST (06:00Z), so 01:00-01:59 happens twice.
  Europe/London     GMT = UTC, BST = UTC+1. Spring forward Sun 03-29 01:00 GMT -> 02:00 BST (01:00Z);
                    fall back Sun 10-25 02:00 BST -> 01:00 GMT (01:00Z).
  Australia/Lord_Howe  +10:30 / +11 (a 30-minute change). 10-04 02:00 -> 02:30 (15:30Z on 10-03);
                    04-05 02:00 -> 01:30 (15:00Z on 04-04).
+80012345678 is an international freephone number with no zone, so its callee hours are read in
the job's zone; most examples switch callee hours off to isolate the window rules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outdial.services.timing.rules import plan
from outdial.services.timing.spec import compile_rules, load_job_spec, start_instant

NY = "America/New_York"
LONDON = "Europe/London"
NO_ZONE = "+80012345678"
NEW_YORK_NUMBER = "+12125550123"


def plan_of(
    spec: dict[str, Any], fail_after_s: float = 0, now: str = "2026-01-01T00:00:00+00:00"
) -> tuple[list[str], str]:
    job = load_job_spec(spec)
    rules = compile_rules(job, job.to_number, default_timezone="UTC", default_callee_hours="08:00-21:00")
    result = plan(rules, start_instant(job, rules, datetime.fromisoformat(now)), timedelta(seconds=fail_after_s))
    return [a.astimezone(UTC).isoformat() for a in result.attempts], result.outcome


def z(text: str) -> str:
    """``2026-03-08 07:00`` -> ``2026-03-08T07:00:00+00:00`` (a UTC instant as the plan prints it)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


def ny(**fields: Any) -> dict[str, Any]:
    return {"to_number": NO_ZONE, "timezone": NY, "callee_hours": None, **fields}


def london(**fields: Any) -> dict[str, Any]:
    return {"to_number": NO_ZONE, "timezone": LONDON, "callee_hours": None, **fields}


# ---------------------------------------------------------------- rule 2: schedule_at in the gap and the fold


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        # 02:30 does not exist on 03-08 in New York: the first valid instant after it is 03:00 EDT = 07:00Z.
        (NY, "2026-03-08T02:30:00", "2026-03-08 07:00"),
        # 01:30 happens twice on 11-01: the first occurrence is 01:30 EDT = 05:30Z (the second is 06:30Z).
        (NY, "2026-11-01T01:30:00", "2026-11-01 05:30"),
        # 01:30 does not exist in London on 03-29: 02:00 BST = 01:00Z.
        (LONDON, "2026-03-29T01:30:00", "2026-03-29 01:00"),
        # 01:30 happens twice in London on 10-25: first 01:30 BST = 00:30Z.
        (LONDON, "2026-10-25T01:30:00", "2026-10-25 00:30"),
        # Lord Howe skips 02:00-02:29 on 10-04: 02:15 -> 02:30 (+11) = 15:30Z on 10-03.
        ("Australia/Lord_Howe", "2026-10-04T02:15:00", "2026-10-03 15:30"),
        # Lord Howe repeats 01:30-01:59 on 04-05: 01:45 first occurrence (+11) = 14:45Z on 04-04.
        ("Australia/Lord_Howe", "2026-04-05T01:45:00", "2026-04-04 14:45"),
        # An ordinary wall clock: 12:00 EST = 17:00Z (the SPEC's own sample output).
        (NY, "2026-12-01T12:00:00", "2026-12-01 17:00"),
    ],
)
def test_schedule_at_wall_clock_in_gap_and_fold(zone: str, wall: str, expected: str) -> None:
    spec = {"to_number": NO_ZONE, "timezone": zone, "callee_hours": None, "schedule_at": wall}
    assert plan_of(spec) == ([z(expected)], "exhausted")


def test_schedule_at_with_an_offset_is_that_instant_whatever_the_zone() -> None:
    # 2026-03-08T02:30:00-05:00 is 07:30Z; the offset wins over New York's wall clock.
    assert plan_of(ny(schedule_at="2026-03-08T02:30:00-05:00")) == ([z("2026-03-08 07:30")], "exhausted")


def test_absent_schedule_at_means_now() -> None:
    assert plan_of(ny(), now="2026-12-01T10:11:12+00:00") == ([z("2026-12-01 10:11:12")], "exhausted")


def test_schedule_at_before_now_is_kept_as_written() -> None:
    # Rule 2 makes the start schedule_at itself; --now only replaces an absent schedule_at.
    assert plan_of(ny(schedule_at="2026-01-05T12:00:00"), now="2026-06-01T00:00:00+00:00") == (
        [z("2026-01-05 17:00")],
        "exhausted",
    )


# ---------------------------------------------------------------- rule 3: window bounds in the gap and the fold


def test_window_opening_in_the_gap_opens_at_the_first_valid_instant() -> None:
    # 03-08 instance [02:30, 05:00): 02:30 does not exist -> 03:00 EDT = 07:00Z; closes 05:00 EDT = 09:00Z.
    # Start 00:00 EST = 05:00Z lies before it (the 03-07 instance ended 10:00Z on 03-07): due 07:00Z.
    spec = ny(schedule_at="2026-03-08T00:00:00", min_trigger_time="02:30", max_trigger_time="05:00")
    assert plan_of(spec) == ([z("2026-03-08 07:00")], "exhausted")


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        # Instance [01:00 EST = 06:00Z, 02:30 -> 03:00 EDT = 07:00Z). First attempt 01:45 EST = 06:45Z.
        # gap 10: 06:55Z is inside the window -> due then.
        (10, ([z("2026-03-08 06:45"), z("2026-03-08 06:55")], "exhausted")),
        # gap 20: 07:05Z is past the close (07:00Z), no carry-over -> expired.
        (20, ([z("2026-03-08 06:45")], "expired")),
    ],
)
def test_window_closing_in_the_gap_closes_at_the_transition(gap: int, expected: tuple[list[str], str]) -> None:
    spec = ny(
        schedule_at="2026-03-08T01:45:00",
        min_trigger_time="01:00",
        max_trigger_time="02:30",
        number_of_retries=1,
        gap_between_retries=gap,
    )
    assert plan_of(spec) == expected


def test_window_entirely_inside_the_gap_is_empty_that_day() -> None:
    # 03-08: both 02:00 and 02:45 move to 03:00 EDT, an empty instance. Next: 03-09 02:00 EDT = 06:00Z.
    spec = ny(schedule_at="2026-03-08T00:00:00", min_trigger_time="02:00", max_trigger_time="02:45")
    assert plan_of(spec) == ([z("2026-03-09 06:00")], "exhausted")


def test_window_bound_in_the_fold_takes_the_first_occurrence_and_gaps_are_elapsed() -> None:
    # 11-01 instance [01:30 EDT = 05:30Z, 03:00 EST = 08:00Z): 2.5 h of wall clock, 2.5 h elapsed
    # because the repeated hour lies before 03:00. Start 00:00 EDT = 04:00Z -> due 05:30Z.
    # Retries every 60 elapsed minutes: 06:30Z (01:30 EST, second pass), 07:30Z (02:30 EST), 08:30Z is
    # past the close -> expired after three attempts.
    spec = ny(
        schedule_at="2026-11-01T00:00:00",
        min_trigger_time="01:30",
        max_trigger_time="03:00",
        number_of_retries=3,
        gap_between_retries=60,
    )
    assert plan_of(spec) == ([z("2026-11-01 05:30"), z("2026-11-01 06:30"), z("2026-11-01 07:30")], "expired")


@pytest.mark.parametrize(
    ("carry_over", "expected"),
    [
        # Instance [00:00 EDT = 04:00Z, 01:30 EDT (first occurrence) = 05:30Z). Attempt 01:10 EDT = 05:10Z.
        # +60 min = 06:10Z: the wall clock reads 01:10 EST, below 01:30, but the window closed at 05:30Z.
        (False, ([z("2026-11-01 05:10")], "expired")),
        # Carried over to 11-02 00:00 EST = 05:00Z.
        (True, ([z("2026-11-01 05:10"), z("2026-11-02 05:00")], "exhausted")),
    ],
)
def test_second_pass_of_the_repeated_hour_is_after_a_fold_closed_window(
    carry_over: bool, expected: tuple[list[str], str]
) -> None:
    spec = ny(
        schedule_at="2026-11-01T01:10:00",
        max_trigger_time="01:30",
        number_of_retries=1,
        gap_between_retries=60,
        carry_over=carry_over,
    )
    assert plan_of(spec) == expected


def test_london_second_pass_of_a_fold_window_is_not_inside_it() -> None:
    # 10-25 instance [01:15 BST = 00:15Z, 01:45 BST = 00:45Z). Start 00:50Z (01:50 BST): closed.
    # At 01:15Z the wall clock reads 01:15 GMT again, but that is no instance. Next: 10-26 01:15 GMT = 01:15Z.
    spec = london(schedule_at="2026-10-25T00:50:00+00:00", min_trigger_time="01:15", max_trigger_time="01:45")
    assert plan_of(spec) == ([z("2026-10-26 01:15")], "exhausted")


# ---------------------------------------------------------------- overnight windows across a change


@pytest.mark.parametrize(
    ("carry_over", "expected"),
    [
        # Saturday 03-07 owns [22:00 EST = 03:00Z 03-08, 06:00 EDT = 10:00Z): 7 elapsed hours, 8 on the clock.
        # Start 23:00 EST = 04:00Z. +3 h = 07:00Z (03:00 EDT) inside. +3 h = 10:00Z = the close, outside.
        (False, ([z("2026-03-08 04:00"), z("2026-03-08 07:00")], "expired")),
        # Carry-over: Sunday is not allowed, the next instance is Saturday 03-14 22:00 EDT = 02:00Z 03-15.
        (True, ([z("2026-03-08 04:00"), z("2026-03-08 07:00"), z("2026-03-15 02:00")], "exhausted")),
    ],
)
def test_new_york_overnight_window_across_spring_forward_owned_by_saturday(
    carry_over: bool, expected: tuple[list[str], str]
) -> None:
    spec = ny(
        schedule_at="2026-03-07T23:00:00",
        min_trigger_time="22:00",
        max_trigger_time="06:00",
        days_of_week=["sat"],
        number_of_retries=2,
        gap_between_retries=180,
        carry_over=carry_over,
    )
    assert plan_of(spec) == expected


@pytest.mark.parametrize(
    ("carry_over", "expected"),
    [
        # Saturday 10-24 owns [23:00 BST = 22:00Z, 03:00 GMT 10-25 = 03:00Z): 5 elapsed hours.
        # Every 100 min: 22:00Z, 23:40Z, 01:20Z; 03:00Z is the close -> expired.
        (False, ([z("2026-10-24 22:00"), z("2026-10-24 23:40"), z("2026-10-25 01:20")], "expired")),
        # Carry-over: every day allowed, next instance 10-25 23:00 GMT = 23:00Z.
        (
            True,
            ([z("2026-10-24 22:00"), z("2026-10-24 23:40"), z("2026-10-25 01:20"), z("2026-10-25 23:00")], "exhausted"),
        ),
    ],
)
def test_london_overnight_window_across_fall_back(carry_over: bool, expected: tuple[list[str], str]) -> None:
    spec = london(
        schedule_at="2026-10-24T23:00:00",
        min_trigger_time="23:00",
        max_trigger_time="03:00",
        number_of_retries=3,
        gap_between_retries=100,
        carry_over=carry_over,
    )
    assert plan_of(spec) == expected


# ---------------------------------------------------------------- rule 6: gaps are elapsed time


def test_retry_gaps_across_fall_back_are_elapsed_minutes() -> None:
    # Window [00:00 EDT = 04:00Z, 05:00 EST = 10:00Z). 00:30 EDT = 04:30Z, then +120 min twice:
    # 06:30Z (01:30 EST: the wall clock moved one hour) and 08:30Z (03:30 EST).
    spec = ny(
        schedule_at="2026-11-01T00:30:00",
        min_trigger_time="00:00",
        max_trigger_time="05:00",
        number_of_retries=2,
        gap_between_retries=120,
    )
    assert plan_of(spec) == ([z("2026-11-01 04:30"), z("2026-11-01 06:30"), z("2026-11-01 08:30")], "exhausted")


def test_retry_gap_across_spring_forward_is_elapsed_minutes() -> None:
    # 01:30 EST = 06:30Z, +60 min = 07:30Z = 03:30 EDT (the wall clock moved two hours), inside [.., 06:00 EDT).
    spec = ny(schedule_at="2026-03-08T01:30:00", max_trigger_time="06:00", number_of_retries=1, gap_between_retries=60)
    assert plan_of(spec) == ([z("2026-03-08 06:30"), z("2026-03-08 07:30")], "exhausted")


def test_retry_gap_across_london_spring_forward_is_elapsed_minutes() -> None:
    # 00:30 GMT = 00:30Z, +90 min = 02:00Z = 03:00 BST, inside [00:00, 06:00 BST = 05:00Z).
    spec = london(
        schedule_at="2026-03-29T00:30:00", max_trigger_time="06:00", number_of_retries=1, gap_between_retries=90
    )
    assert plan_of(spec) == ([z("2026-03-29 00:30"), z("2026-03-29 02:00")], "exhausted")


def test_gap_list_last_entry_repeats_and_fail_after_is_added() -> None:
    # gaps [10, 20] for 4 retries -> 10, 20, 20, 20; each attempt ends 60 s after it starts.
    spec = {"to_number": NO_ZONE, "callee_hours": None, "schedule_at": "2026-12-01T12:00:00Z", "number_of_retries": 4}
    spec["gap_between_retries"] = [10, 20]
    assert plan_of(spec, fail_after_s=60) == (
        [
            z("2026-12-01 12:00"),
            z("2026-12-01 12:11"),
            z("2026-12-01 12:32"),
            z("2026-12-01 12:53"),
            z("2026-12-01 13:14"),
        ],
        "exhausted",
    )


def test_gap_list_longer_than_the_retries_uses_its_head() -> None:
    spec = {"to_number": NO_ZONE, "callee_hours": None, "schedule_at": "2026-12-01T12:00:00Z", "number_of_retries": 2}
    spec["gap_between_retries"] = [5, 7, 1000]
    assert plan_of(spec) == ([z("2026-12-01 12:00"), z("2026-12-01 12:05"), z("2026-12-01 12:12")], "exhausted")


def test_attempt_ending_after_the_close_expires_even_with_gap_zero() -> None:
    # Window [09:00, 10:00) UTC, start 09:50, each attempt lasts 15 min: retry instant 10:05 -> expired.
    spec = {
        "to_number": NO_ZONE,
        "callee_hours": None,
        "schedule_at": "2026-12-01T09:50:00Z",
        "min_trigger_time": "09:00",
        "max_trigger_time": "10:00",
        "number_of_retries": 1,
        "gap_between_retries": 0,
    }
    assert plan_of(spec, fail_after_s=900) == ([z("2026-12-01 09:50")], "expired")


# ---------------------------------------------------------------- days of week, missing bounds


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Tue 12-01 01:00Z lies in Monday 11-30's instance [Mon 22:00Z, Tue 02:00Z): due at once.
        ("2026-12-01T01:00:00Z", "2026-12-01 01:00"),
        # Mon 12-07 01:00Z lies in Sunday's instance, and Sunday is not allowed: Mon 22:00Z.
        ("2026-12-07T01:00:00Z", "2026-12-07 22:00"),
        # Tue 12-01 03:00Z: Monday's instance closed at 02:00Z; next Monday 12-07 22:00Z.
        ("2026-12-01T03:00:00Z", "2026-12-07 22:00"),
    ],
)
def test_overnight_instance_belongs_to_the_day_it_starts(start: str, expected: str) -> None:
    spec = {
        "to_number": NO_ZONE,
        "timezone": "UTC",
        "callee_hours": None,
        "schedule_at": start,
        "min_trigger_time": "22:00",
        "max_trigger_time": "02:00",
        "days_of_week": [1],
    }
    assert plan_of(spec) == ([z(expected)], "exhausted")


def test_missing_min_is_midnight() -> None:
    # [00:00, 06:00) New York. 07:00 EST 12-01 is past it: 12-02 00:00 EST = 05:00Z.
    assert plan_of(ny(schedule_at="2026-12-01T07:00:00", max_trigger_time="06:00")) == (
        [z("2026-12-02 05:00")],
        "exhausted",
    )


def test_missing_max_is_midnight_next_day() -> None:
    # [20:00, 24:00) New York. 23:30 EST = 04:30Z 12-02, inside; +45 min = 00:15 EST 12-02, past 24:00,
    # and the 12-02 instance opens only at 20:00: expired.
    spec = ny(schedule_at="2026-12-01T23:30:00", min_trigger_time="20:00", number_of_retries=1, gap_between_retries=45)
    assert plan_of(spec) == ([z("2026-12-02 04:30")], "expired")


def test_min_midnight_without_max_is_a_whole_day_and_days_touch_into_one_window() -> None:
    # [00:00, 24:00) on Mon and Tue UTC: the two instances touch and merge into one effective window,
    # so a retry across Monday midnight stays in it. Start Mon 12-07 23:00Z, +120 min = Tue 01:00Z.
    spec = {
        "to_number": NO_ZONE,
        "timezone": "UTC",
        "callee_hours": None,
        "schedule_at": "2026-12-07T23:00:00Z",
        "min_trigger_time": "00:00",
        "days_of_week": ["mon", "tue"],
        "number_of_retries": 2,
        "gap_between_retries": [120, 1440],
    }
    # Then +1440 min = Wed 01:00Z: Wednesday is not allowed -> expired.
    assert plan_of(spec) == ([z("2026-12-07 23:00"), z("2026-12-08 01:00")], "expired")


def test_max_midnight_written_0000_runs_to_the_next_midnight() -> None:
    # 22:00-00:00 is overnight to the next midnight: the same as 22:00-24:00.
    spec = {"to_number": NO_ZONE, "callee_hours": None, "schedule_at": "2026-12-01T12:00:00Z"}
    for maximum in ("00:00", "24:00"):
        assert plan_of({**spec, "min_trigger_time": "22:00", "max_trigger_time": maximum}) == (
            [z("2026-12-01 22:00")],
            "exhausted",
        )


# ---------------------------------------------------------------- callee hours and "callee" zones


@pytest.mark.parametrize(
    ("callee_hours", "expected"),
    [
        # Start 03:00Z = 22:00 EST on 11-30 in the callee's New York.
        ({"callee_hours": None}, "2026-12-01 03:00"),  # off: at once
        ({}, "2026-12-01 13:00"),  # default 08:00-21:00 New York: 08:00 EST = 13:00Z
        ({"callee_hours": "22:00-23:00"}, "2026-12-01 03:00"),  # custom, open at 22:00 EST
        ({"callee_hours": "06:00-07:00"}, "2026-12-01 11:00"),  # custom: 06:00 EST = 11:00Z
    ],
)
def test_callee_hours_off_default_custom(callee_hours: dict[str, Any], expected: str) -> None:
    spec = {"to_number": NEW_YORK_NUMBER, "timezone": "UTC", "schedule_at": "2026-12-01T03:00:00Z", **callee_hours}
    assert plan_of(spec) == ([z(expected)], "exhausted")


def test_callee_zone_single_reads_naive_schedule_at_in_that_zone() -> None:
    # +1 212 -> New York. Naive 08:00 is 08:00 EST = 13:00Z; window 09:00-17:00 opens 14:00Z.
    spec = {
        "to_number": NEW_YORK_NUMBER,
        "timezone": "callee",
        "schedule_at": "2026-12-01T08:00:00",
        "min_trigger_time": "09:00",
        "max_trigger_time": "17:00",
    }
    assert plan_of(spec) == ([z("2026-12-01 14:00")], "exhausted")


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        # +1 709 -> Halifax (-4) and St John's (-03:30) in December. Naive 12:00 is read as 12:00Z.
        # Window 09:00-17:00 in both: [13:00Z, 21:00Z) and [12:30Z, 20:30Z) -> [13:00Z, 20:30Z);
        # callee hours 08-21 in both: [12:00Z, 00:30Z) -> effective [13:00Z, 20:30Z). Due 13:00Z.
        (449, ([z("2026-12-01 13:00"), z("2026-12-01 20:29")], "exhausted")),
        (450, ([z("2026-12-01 13:00")], "expired")),  # 20:30Z is the close
    ],
)
def test_callee_with_several_zones_must_hold_in_each(gap: int, expected: tuple[list[str], str]) -> None:
    spec = {
        "to_number": "+17095550123",
        "timezone": "callee",
        "schedule_at": "2026-12-01T12:00:00",
        "min_trigger_time": "09:00",
        "max_trigger_time": "17:00",
        "number_of_retries": 1,
        "gap_between_retries": gap,
    }
    assert plan_of(spec) == expected


def test_uk_mobile_is_several_zones_so_naive_schedule_at_is_utc() -> None:
    # +44 7911 -> London, Jersey, Guernsey, Isle of Man: several zones, so naive 08:30 is 08:30Z (09:30 BST),
    # inside 09:00-17:00 BST = [08:00Z, 16:00Z) and callee hours [07:00Z, 20:00Z).
    spec = {
        "to_number": "+447911123456",
        "timezone": "callee",
        "schedule_at": "2026-07-01T08:30:00",
        "min_trigger_time": "09:00",
        "max_trigger_time": "17:00",
    }
    assert plan_of(spec) == ([z("2026-07-01 08:30")], "exhausted")


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        # +1 800 rings anywhere from Guam (+10) to Pago Pago (-11) and St John's (-03:30). In December,
        # 08:00-21:00 in every one of them: Guam [22:00Z, 11:00Z) and St John's [11:30Z, 00:30Z) leave
        # [22:00Z, 00:30Z), which every other zone contains. Start 12:00Z -> due 22:00Z.
        (149, ([z("2026-12-01 22:00"), z("2026-12-02 00:29")], "exhausted")),
        (150, ([z("2026-12-01 22:00")], "expired")),
    ],
)
def test_toll_free_number_callee_hours_hold_in_every_zone(gap: int, expected: tuple[list[str], str]) -> None:
    spec = {
        "to_number": "+18005550199",
        "timezone": "UTC",
        "schedule_at": "2026-12-01T12:00:00Z",
        "number_of_retries": 1,
        "gap_between_retries": gap,
    }
    assert plan_of(spec) == expected


# ---------------------------------------------------------------- rule 4: no callable window within 8 days


def test_window_and_callee_hours_that_never_overlap_are_rejected() -> None:
    spec = {
        "to_number": NEW_YORK_NUMBER,
        "timezone": NY,
        "min_trigger_time": "09:00",
        "max_trigger_time": "17:00",
        "callee_hours": "18:00-20:00",
        "schedule_at": "2026-12-01T09:00:00",
    }
    assert plan_of(spec) == ([], "rejected")


def test_toll_free_callee_business_hours_are_rejected() -> None:
    # 09:00-17:00 in Guam is [23:00Z, 07:00Z); in St John's [12:30Z, 20:30Z): never both.
    spec = {"to_number": "+18005550199", "timezone": "callee", "min_trigger_time": "09:00", "max_trigger_time": "17:00"}
    assert plan_of(spec, now="2026-12-01T00:00:00+00:00") == ([], "rejected")


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Sundays 02:00-02:30 New York. Sunday 03-08's instance lies in the gap (both bounds -> 03:00 EDT):
        # empty. From 03-01 02:30 EST = 07:30Z the next opening is 03-15 02:00 EDT = 06:00Z, 13 d 22.5 h
        # later: nothing opens within 8 days -> rejected.
        ("2026-03-01T07:30:00Z", ([], "rejected")),
        # From 03-07 12:00Z the same opening is 7 d 18 h away: it counts.
        ("2026-03-07T12:00:00Z", ([z("2026-03-15 06:00")], "exhausted")),
        # Exactly 8 days before it: "within 8 days" includes the 8th day's end.
        ("2026-03-07T06:00:00Z", ([z("2026-03-15 06:00")], "exhausted")),
    ],
)
def test_eight_day_horizon_around_an_empty_instance(start: str, expected: tuple[list[str], str]) -> None:
    spec = ny(schedule_at=start, min_trigger_time="02:00", max_trigger_time="02:30", days_of_week=["sun"])
    assert plan_of(spec) == expected


def test_a_weekly_window_more_than_seven_days_away_across_fall_back_still_counts() -> None:
    # Sundays 00:00-00:30 New York. Start 11-01 00:30 EDT = 04:30Z, just closed. Next: 11-08 00:00 EST = 05:00Z,
    # 7 d 0.5 h later (the week gained an hour): within 8 days.
    spec = ny(schedule_at="2026-11-01T00:30:00", max_trigger_time="00:30", days_of_week=[7])
    assert plan_of(spec) == ([z("2026-11-08 05:00")], "exhausted")


@pytest.mark.parametrize(
    ("carry_over", "expected"),
    [
        # Sundays 02:00-02:30 New York. Attempt 03-01 02:00 EST = 07:00Z; +60 min = 08:00Z, past the close.
        (False, ([z("2026-03-01 07:00")], "expired")),
        # Carry-over: Sunday 03-08's instance is empty (the gap), so the first window opening after the instant
        # is 03-15 02:00 EDT = 06:00Z, 14 days on. Rule 6 sets no 8-day limit on carry-over: it is due then.
        (True, ([z("2026-03-01 07:00"), z("2026-03-15 06:00")], "exhausted")),
    ],
)
def test_carry_over_past_an_instance_emptied_by_spring_forward(
    carry_over: bool, expected: tuple[list[str], str]
) -> None:
    spec = ny(
        schedule_at="2026-03-01T02:00:00",
        min_trigger_time="02:00",
        max_trigger_time="02:30",
        days_of_week=["sun"],
        number_of_retries=1,
        gap_between_retries=60,
        carry_over=carry_over,
    )
    assert plan_of(spec) == expected
