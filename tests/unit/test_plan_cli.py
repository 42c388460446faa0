"""``outdial plan`` as SPEC 5 describes it: the JSON it prints, ``--now``, ``--fail-after``, and exit 2 on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from outdial.cli import app
from outdial.settings import reset_settings

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d:\d\d$")
NEW_YORK_NUMBER = "+12125550123"
runner = CliRunner()


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The embedded defaults (UTC, callee hours 08:00-21:00, 30-minute gaps), whatever the shell exports."""
    for name in ("OUTDIAL_DEFAULT_TIMEZONE", "OUTDIAL_CALLEE_HOURS", "OUTDIAL_DEFAULT_GAP_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield
    reset_settings()


def run_plan(spec: Any, *options: str) -> tuple[int, str, str]:
    stdin = spec if isinstance(spec, str) else json.dumps(spec)
    result = runner.invoke(app, ["plan", *options], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def planned(spec: Any, *options: str) -> dict[str, Any]:
    code, out, err = run_plan(spec, *options)
    assert (code, err) == (0, ""), err
    result: dict[str, Any] = json.loads(out)
    return result


# ---------------------------------------------------------------- output shape


def test_spec_sample_output_shape() -> None:
    # 12:00 New York on 12-01 is 17:00Z: the SPEC's own sample line. ``--now`` pins the clock: without it the
    # sample expires once the real date passes 2026-12-01.
    spec = {"to_number": NEW_YORK_NUMBER, "timezone": "America/New_York", "schedule_at": "2026-12-01T12:00:00"}
    code, out, err = run_plan(spec, "--now", "2026-11-30T00:00:00Z")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"attempts": ["2026-12-01T17:00:00+00:00"], "outcome": "exhausted"}
    assert out.count("\n") == 1  # one JSON document on one line


@pytest.mark.parametrize(
    ("spec", "outcome", "count"),
    [
        ({"number_of_retries": 3, "gap_between_retries": [30, 60]}, "exhausted", 4),
        # 20:30 in New York, callee hours end 21:00: the retry after the default 30 min gap lands on the close.
        ({"schedule_at": "2026-12-01T20:30:00", "timezone": "America/New_York", "number_of_retries": 2}, "expired", 1),
        ({"min_trigger_time": "09:00", "max_trigger_time": "17:00", "callee_hours": "18:00-20:00"}, "rejected", 0),
    ],
)
def test_outcomes_and_attempts_are_iso_with_offset(spec: dict[str, Any], outcome: str, count: int) -> None:
    result = planned({"to_number": NEW_YORK_NUMBER, **spec}, "--now", "2026-12-01T15:00:00Z")
    assert set(result) == {"attempts", "outcome"}
    assert result["outcome"] == outcome
    assert len(result["attempts"]) == count
    for text in result["attempts"]:
        assert ISO_WITH_OFFSET.match(text), text
        assert datetime.fromisoformat(text).utcoffset() is not None
    instants = [datetime.fromisoformat(t) for t in result["attempts"]]
    assert instants == sorted(instants)


def test_callkaro_request_body_plans_as_it_is() -> None:
    # The seed's "business hours" example: 09:30 wall clock in the default zone (UTC), window 09:00-18:00;
    # +919876543210 is in India, whose callee hours 08:00-21:00 IST are [02:30Z, 15:30Z).
    body = {
        "to_number": "+919876543210",
        "agent_id": "6803fa770b666a64ab1694c1e",
        "metadata": {"name": "Abhinav"},
        "priority": 1,
        "language": "hi",
        "schedule_at": "2025-12-31T09:30:00",
        "min_trigger_time": "09:00",
        "max_trigger_time": "18:00",
        "number_of_retries": 3,
        "gap_between_retries": 30,
    }
    assert planned(body, "--now", "2025-12-30T00:00:00Z") == {
        "attempts": [
            "2025-12-31T09:30:00+00:00",
            "2025-12-31T10:00:00+00:00",
            "2025-12-31T10:30:00+00:00",
            "2025-12-31T11:00:00+00:00",
        ],
        "outcome": "exhausted",
    }


# ---------------------------------------------------------------- --now and --fail-after


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-12-01T15:00:00+00:00", "2026-12-01T15:00:00+00:00"),
        ("2026-12-01T15:00:00", "2026-12-01T15:00:00+00:00"),  # naive --now is UTC
        ("2026-12-01T10:00:00-05:00", "2026-12-01T15:00:00+00:00"),
        ("2026-12-01T15:00:00Z", "2026-12-01T15:00:00+00:00"),
        # 03:00Z is 22:00 in New York, after callee hours: the first attempt waits for 08:00 EST = 13:00Z.
        ("2026-12-01T03:00:00Z", "2026-12-01T13:00:00+00:00"),
    ],
)
def test_now_is_the_start_without_schedule_at(now: str, expected: str) -> None:
    assert planned({"to_number": NEW_YORK_NUMBER}, "--now", now)["attempts"] == [expected]


def test_now_does_not_move_a_given_schedule_at() -> None:
    spec = {"to_number": NEW_YORK_NUMBER, "schedule_at": "2026-12-03T15:00:00Z"}
    assert planned(spec, "--now", "2026-12-01T15:00:00Z")["attempts"] == ["2026-12-03T15:00:00+00:00"]
    # Later the same day, inside the window it falls in (callee hours end 21:00 EST = 02:00Z): kept.
    assert planned(spec, "--now", "2026-12-03T20:00:00Z")["attempts"] == ["2026-12-03T15:00:00+00:00"]


def test_a_schedule_at_whose_window_closed_before_now_meets_rule_7_as_the_engine_does() -> None:
    """POST /calls with the same spec at the same moment makes an expired job, or one carried over (issue 16)."""
    spec = {"to_number": NEW_YORK_NUMBER, "schedule_at": "2026-12-03T15:00:00Z"}
    assert planned(spec, "--now", "2026-12-05T15:00:00Z") == {"attempts": [], "outcome": "expired"}
    carried = planned({**spec, "carry_over": True}, "--now", "2026-12-05T15:00:00Z")
    assert carried["attempts"] == ["2026-12-05T15:00:00+00:00"]  # 10:00 EST: callee hours are open


def test_default_now_is_the_current_time() -> None:
    before = datetime.now().astimezone()
    result = planned({"to_number": "+80012345678", "callee_hours": None})
    after = datetime.now().astimezone()
    assert before <= datetime.fromisoformat(result["attempts"][0]) <= after


@pytest.mark.parametrize(
    ("fail_after", "expected"),
    [
        # Each attempt ends fail-after seconds after it starts; the 30-minute gap is counted from that end.
        ("0", ["2026-12-01T15:00:00+00:00", "2026-12-01T15:30:00+00:00", "2026-12-01T16:00:00+00:00"]),
        ("90", ["2026-12-01T15:00:00+00:00", "2026-12-01T15:31:30+00:00", "2026-12-01T16:03:00+00:00"]),
        ("0.5", ["2026-12-01T15:00:00+00:00", "2026-12-01T15:30:00.500000+00:00", "2026-12-01T16:00:01+00:00"]),
    ],
)
def test_fail_after_delays_each_retry(fail_after: str, expected: list[str]) -> None:
    spec = {"to_number": NEW_YORK_NUMBER, "number_of_retries": 2, "gap_between_retries": 30}
    assert planned(spec, "--now", "2026-12-01T15:00:00Z", "--fail-after", fail_after)["attempts"] == expected


def test_fail_after_pushing_past_the_window_expires() -> None:
    # Window 15:00-16:00Z, 20-minute calls, 30-minute gaps: 15:00, 15:50, then 16:40 is outside.
    spec = {
        "to_number": NEW_YORK_NUMBER,
        "min_trigger_time": "15:00",
        "max_trigger_time": "16:00",
        "number_of_retries": 2,
        "gap_between_retries": 30,
    }
    assert planned(spec, "--now", "2026-12-01T15:00:00Z", "--fail-after", "1200") == {
        "attempts": ["2026-12-01T15:00:00+00:00", "2026-12-01T15:50:00+00:00"],
        "outcome": "expired",
    }


def test_settings_default_zone_and_callee_hours_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rule 1's last step is the setting's default zone; callee hours default from settings too.
    monkeypatch.setenv("OUTDIAL_DEFAULT_TIMEZONE", "America/New_York")
    monkeypatch.setenv("OUTDIAL_CALLEE_HOURS", "10:00-11:00")
    reset_settings()
    spec = {"to_number": NEW_YORK_NUMBER, "schedule_at": "2026-12-01T09:00:00"}  # 09:00 EST
    assert planned(spec, "--now", "2026-11-30T00:00:00Z")["attempts"] == ["2026-12-01T15:00:00+00:00"]  # opens 10:00


# ---------------------------------------------------------------- invalid input: exit 2, one line naming the field


def _base(**fields: Any) -> str:
    return json.dumps({"to_number": NEW_YORK_NUMBER, **fields})


INVALID = [
    (_base(timezone="Mars/Olympus"), "timezone"),
    (_base(timezone=""), "timezone"),
    (_base(timezone="callee", to_number="+80012345678"), "timezone"),
    (_base(min_trigger_time="09:00", max_trigger_time="09:00"), "max_trigger_time"),
    (_base(max_trigger_time="00:00"), "max_trigger_time"),  # a missing min is 00:00
    (_base(callee_hours="09:00-09:00"), "callee_hours"),
    (_base(callee_hours="8-21"), "callee_hours"),
    (_base(number_of_retries=11), "number_of_retries"),
    (_base(number_of_retries=-1), "number_of_retries"),
    (_base(gap_between_retries=-5), "gap_between_retries"),
    (_base(gap_between_retries=[10, -5]), "gap_between_retries"),
    (_base(gap_between_retries=[]), "gap_between_retries"),
    (_base(gap_between_retries="soon"), "gap_between_retries"),
    (_base(min_trigger_time="9am"), "min_trigger_time"),
    (_base(min_trigger_time="24:00"), "min_trigger_time"),
    (_base(max_trigger_time="24:01"), "max_trigger_time"),
    (_base(max_trigger_time="17:60"), "max_trigger_time"),
    (_base(schedule_at="tomorrow"), "schedule_at"),
    (_base(schedule_at="2026-02-30T10:00:00"), "schedule_at"),
    (_base(schedule_at="9999-12-31T20:00:00"), "schedule_at"),  # the 8-day search would leave the calendar
    (_base(days_of_week=["funday"]), "days_of_week"),
    (_base(days_of_week=[8]), "days_of_week"),
    (_base(days_of_week=[]), "days_of_week"),
    (_base(priority=101), "priority"),
    (_base(carry_over="maybe"), "carry_over"),
    (json.dumps({"to_number": "12345"}), "to_number"),
    (json.dumps({"to_number": "+1 555 0100"}), "to_number"),
    (json.dumps({"to_number": "not a number"}), "to_number"),
    (json.dumps({"to_number": 12125550123}), "to_number"),
    (json.dumps({"timezone": "UTC"}), "to_number"),  # missing
    (_base(tz="UTC"), "tz"),  # unknown field
    (_base(min_trigger="09:00"), "min_trigger"),
    ("[]", "spec"),
    ('"+12125550123"', "spec"),
    ("3", "spec"),
    ("null", "spec"),
    ("{", "spec"),
    ('{"to_number": "+12125550123",}', "spec"),
    ("", "spec"),
]


@pytest.mark.parametrize(("stdin", "field"), INVALID)
def test_invalid_spec_exits_2_with_one_line_naming_the_field(stdin: str, field: str) -> None:
    code, out, err = run_plan(stdin, "--now", "2026-12-01T15:00:00Z")
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(rf"(^|\W){re.escape(field)}\W", err), err


@pytest.mark.parametrize(
    ("options", "field"),
    [(("--now", "yesterday"), "--now"), (("--fail-after", "-1"), "--fail-after"), (("--now", "0001-01-01"), "--now")],
)
def test_invalid_options_exit_2_with_one_line(options: tuple[str, ...], field: str) -> None:
    code, out, err = run_plan({"to_number": NEW_YORK_NUMBER}, *options)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and field in err, err


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-20, 3000), st.floats(allow_nan=False), st.text(max_size=12)
)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
FIELD_VALUES = {
    "schedule_at": st.one_of(JSON_VALUES, st.sampled_from(["2026-03-08T02:30:00", "2026-11-01T01:30:00-04:00"])),
    "min_trigger_time": st.one_of(JSON_VALUES, st.sampled_from(["09:00", "23:59", "0:00", "24:00"])),
    "max_trigger_time": st.one_of(JSON_VALUES, st.sampled_from(["17:00", "00:00", "24:00"])),
    "days_of_week": st.one_of(JSON_VALUES, st.lists(st.sampled_from([0, 1, 7, "mon", "Sunday", "x"]), max_size=3)),
    "carry_over": JSON_VALUES,
    "number_of_retries": st.one_of(JSON_VALUES, st.integers(0, 10)),
    "gap_between_retries": JSON_VALUES,
    "priority": JSON_VALUES,
    "timezone": st.one_of(JSON_VALUES, st.sampled_from(["callee", "Asia/Kathmandu", "Pacific/Chatham"])),
    "callee_hours": st.one_of(JSON_VALUES, st.sampled_from(["22:00-06:00", "08:00-24:00", "21:00-08:00"])),
    "to_number": st.one_of(JSON_VALUES, st.sampled_from(["+18005550199", "+447911123456", "+97714220000"])),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.fixed_dictionaries({}, optional=FIELD_VALUES))
def test_any_json_object_plans_or_fails_with_one_line(spec: dict[str, Any]) -> None:
    """Whatever the values, the command either prints a plan or exits 2 with one line: never a traceback."""
    code, out, err = run_plan(spec, "--now", "2026-12-01T15:00:00Z")
    if code == 0:
        result = json.loads(out)
        assert set(result) == {"attempts", "outcome"} and err == ""
        assert result["outcome"] in {"exhausted", "expired", "rejected"}
    else:
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("error: "), err


def test_real_process_prints_one_line_and_exits_2() -> None:
    """The same through the installed entry point: no traceback reaches the terminal."""
    done = subprocess.run(
        [sys.executable, "-m", "outdial", "plan", "--now", "2026-12-01T15:00:00Z"],
        input=_base(min_trigger_time="22:00", max_trigger_time="22:00"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "max_trigger_time" in done.stderr, done.stderr

    done = subprocess.run(
        [sys.executable, "-m", "outdial", "plan", "--now", "2026-12-01T15:00:00Z"],
        input=_base(min_trigger_time="22:00", max_trigger_time="00:00", callee_hours=None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"attempts": ["2026-12-01T22:00:00+00:00"], "outcome": "exhausted"}
