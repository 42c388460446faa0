"""A job's timing fields as users write them (SPEC 5), validated and compiled into :class:`Rules`.

The same model validates ``outdial plan`` input, the HTTP API's call body,
campaign options and CSV overrides, so every way in rejects the same values
with the same message.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outdial.errors import InputError
from outdial.services.timing.rules import MINUTES_PER_DAY, DailyWindow, Rules, wall_to_instant
from outdial.settings import Settings
from outdial.vocab import Language

CALLEE = "callee"
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAY_NAMES = {
    name: i + 1
    for i, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
}


class SpecError(InputError):
    """An invalid timing spec; ``field`` names the offending input."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.message = message


def parse_hhmm(value: str, *, allow_2400: bool = False) -> int:
    """Minutes after midnight of an ``HH:MM`` string."""
    if allow_2400 and value == "24:00":
        return MINUTES_PER_DAY
    match = _HHMM.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a time of day HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


def parse_hours(value: str) -> DailyWindow:
    """A daily span ``HH:MM-HH:MM``."""
    parts = value.split("-")
    if len(parts) != 2:
        raise ValueError(f"{value!r} is not a span HH:MM-HH:MM")
    start, end = parse_hhmm(parts[0].strip()), parse_hhmm(parts[1].strip(), allow_2400=True)
    if start == end:
        raise ValueError(f"{value!r} starts and ends at the same time")
    # An end of 00:00 is the next midnight, the same instant as 24:00.
    return DailyWindow(start, end or MINUTES_PER_DAY)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def parse_number(value: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number in E.164 form: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    return number


def callee_zones(number: str) -> tuple[ZoneInfo, ...]:
    """The zones a number may ring in; empty when the number says nothing about it."""
    names = phone_timezone.time_zones_for_number(parse_number(number))
    return tuple(ZoneInfo(n) for n in sorted(set(names)) if n != "Etc/Unknown")


def parse_instant(value: str) -> datetime:
    """An ISO 8601 date-time; naive results stay naive (wall-clock time)."""
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from exc


def parse_days(value: Any) -> frozenset[int] | None:
    """ISO weekdays from names (``mon``, ``Monday``) or numbers (1 = Monday .. 7 = Sunday, 0 = Sunday)."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    days: set[int] = set()
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"{item!r} is not a day of the week")
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            n = int(item)
            if not 0 <= n <= 7:
                raise ValueError(f"{item!r} is not a day of the week (1 = Monday .. 7 = Sunday)")
            days.add(7 if n == 0 else n)
        elif isinstance(item, str) and item.lower() in _DAY_NAMES:
            days.add(_DAY_NAMES[item.lower()])
        else:
            raise ValueError(f"{item!r} is not a day of the week")
    if not days:
        raise ValueError("the list of days is empty")
    return frozenset(days)


# A year: a longer gap is a typo, and would overflow date arithmetic.
MAX_GAP_MINUTES = 366 * 24 * 60
Minutes = Annotated[int, Field(ge=0, le=MAX_GAP_MINUTES)]
# days_of_week as a list (at most every day twice, names and numbers) or as text ("mon,tue,...").
MAX_DAYS_INPUT = 100
# Far enough from the calendar's ends that zone offsets and the search horizon stay inside it.
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000


# A weekday-hours timing, as the API documents show it (its request and answer examples build on it).
TIMING_EXAMPLE: dict[str, Any] = {
    "timezone": "America/New_York",
    "min_trigger_time": "09:00",
    "max_trigger_time": "18:00",
    "days_of_week": ["mon", "tue", "wed", "thu", "fri"],
    "carry_over": True,
    "number_of_retries": 2,
    "gap_between_retries": [30, 120],
}


class TimingFields(BaseModel):
    """The SPEC 5 fields. ``None`` means "not given here" so layers (campaign, lead, job) can be merged."""

    model_config = ConfigDict(extra="forbid")

    schedule_at: str | None = Field(
        default=None,
        description="The first attempt's earliest time, ISO 8601: without an offset, wall-clock time in the job's "
        "zone. Absent: now.",
        examples=["2026-12-02T09:30:00", "2026-12-02T14:30:00Z"],
    )
    min_trigger_time: str | None = Field(
        default=None, description="The daily window's start, HH:MM in the job's zone.", examples=["09:00"]
    )
    max_trigger_time: str | None = Field(
        default=None,
        description="The daily window's end, HH:MM (before the start: the window runs overnight).",
        examples=["18:00"],
    )
    days_of_week: list[int | str] | str | None = Field(
        default=None,
        description="Days the window opens: names (mon, Monday) or ISO numbers (1 = Monday .. 7 = Sunday), "
        "as a list or comma text. Absent: every day.",
        examples=[["mon", "tue", "wed", "thu", "fri"], "mon,wed,fri"],
    )
    carry_over: bool | None = Field(
        default=None,
        description="When a retry falls after its window closes, carry it over to the next window (else the job "
        "expires).",
        examples=[True],
    )
    number_of_retries: int | None = Field(
        default=None, ge=0, le=10, description="Attempts after the first.", examples=[2]
    )
    gap_between_retries: Minutes | Annotated[list[Minutes], Field(max_length=10)] | None = Field(
        default=None,
        description="Minutes from the end of one attempt to the next: one number, or one per retry (the last "
        "repeats). Absent: 30.",
        examples=[30, [30, 120]],
    )
    priority: int | None = Field(
        default=None, ge=-100, le=100, description="Among due jobs, higher goes first. Absent: 0.", examples=[10]
    )
    timezone: str | None = Field(
        default=None,
        description='An IANA zone, or "callee": the zone(s) of the number. Absent: the campaign\'s, else the '
        "setting's default (UTC).",
        examples=["America/New_York", "Asia/Kolkata", "callee"],
    )
    # Absent: the setting's default. Explicit null or "off": callee hours off.
    callee_hours: str | None = Field(
        default="default",
        description='HH:MM-HH:MM in the callee\'s zone; null or "off" for none. Absent: the setting (08:00-21:00).',
        examples=["08:00-21:00", "off"],
    )

    @field_validator("schedule_at")
    @classmethod
    def _check_schedule_at(cls, value: str | None) -> str | None:
        if value is not None and not EARLIEST_YEAR <= parse_instant(value).year <= LATEST_YEAR:
            raise ValueError(f"{value!r} is outside the years {EARLIEST_YEAR}-{LATEST_YEAR}")
        return value

    @field_validator("min_trigger_time")
    @classmethod
    def _check_min(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hhmm(value)
        return value

    @field_validator("max_trigger_time")
    @classmethod
    def _check_max(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hhmm(value, allow_2400=True)
        return value

    @field_validator("days_of_week")
    @classmethod
    def _check_days(cls, value: Any) -> Any:
        # A week has seven days: a longer list is a mistake or an attack, not a schedule.
        if len(value or ()) > MAX_DAYS_INPUT:
            raise ValueError(f"has {len(value)} entries or characters; at most {MAX_DAYS_INPUT}")
        parse_days(value)
        return value

    @field_validator("gap_between_retries")
    @classmethod
    def _check_gaps(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("the list of gaps is empty")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str | None) -> str | None:
        if value is not None and value != CALLEE:
            zone(value)
        return value

    @field_validator("callee_hours", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        """``"off"`` is the spelling everywhere (CLI, API body, Celery task, CSV column) for null."""
        return None if isinstance(value, str) and value.strip().lower() == "off" else value

    @field_validator("callee_hours")
    @classmethod
    def _check_callee_hours(cls, value: str | None) -> str | None:
        if value is not None and value != "default":
            parse_hours(value)
        return value

    def given(self) -> dict[str, Any]:
        """The fields set at this layer, for merging over a lower layer."""
        return {k: getattr(self, k) for k in self.model_fields_set}

    def over(self, lower: TimingFields) -> TimingFields:
        """This layer's given fields on top of ``lower``'s."""
        return TimingFields.model_validate({**lower.given(), **self.given()})


class JobSpec(TimingFields):
    """One job as ``outdial plan`` reads it: the timing fields plus the number to call.

    CallKaro's other request fields are accepted (and ignored by the timing
    rules) so a CallKaro body can be planned as it is; any other unknown field
    is refused, since a misspelt window must never be dropped silently.
    """

    to_number: str
    agent_id: str | None = None
    batch_id: str | None = None
    metadata: dict[str, Any] | None = None
    language: Language | None = None
    account: str | None = None

    @field_validator("to_number")
    @classmethod
    def _check_number(cls, value: str) -> str:
        parse_number(value)
        return value


def _first_error(exc: ValidationError) -> SpecError:
    errors = exc.errors()
    # A union reports one error per branch; the branch that parsed furthest says what is wrong.
    err = next((e for e in errors if not str(e["type"]).endswith("_type")), errors[0])
    # Only the top-level name: the rest of ``loc`` names union branches and list positions.
    field = str(err["loc"][0]) if err["loc"] else "spec"
    message = str(err["msg"]).removeprefix("Value error, ")
    return SpecError(field, message)


def load_job_spec(data: Any) -> JobSpec:
    if not isinstance(data, dict):
        raise SpecError("spec", "a job spec is a JSON object")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None


def compile_rules(
    fields: TimingFields,
    to_number: str,
    *,
    default_timezone: str = "UTC",
    default_callee_hours: str | None = "08:00-21:00",
    default_gap_minutes: int = 30,
) -> Rules:
    """Turn merged timing fields into :class:`Rules`; raises :class:`SpecError` naming the field."""
    try:
        number_zones = callee_zones(to_number)
    except ValueError as exc:
        raise SpecError("to_number", str(exc)) from None

    name = fields.timezone or default_timezone
    if name == CALLEE:
        if not number_zones:
            raise SpecError("timezone", f"'callee' but no time zone is known for {to_number}")
        zones = number_zones
    else:
        try:
            zones = (zone(name),)
        except ValueError as exc:
            raise SpecError("timezone", str(exc)) from None

    window = None
    if fields.min_trigger_time is not None or fields.max_trigger_time is not None:
        lo = parse_hhmm(fields.min_trigger_time) if fields.min_trigger_time else 0
        hi = parse_hhmm(fields.max_trigger_time, allow_2400=True) if fields.max_trigger_time else MINUTES_PER_DAY
        # min == max compares the times as written (a missing min is 00:00): 00:00 with a
        # missing max (24:00) is a whole day, and 22:00-00:00 runs to the next midnight.
        if lo == hi:
            raise SpecError("max_trigger_time", "must differ from min_trigger_time")
        window = DailyWindow(lo, hi or MINUTES_PER_DAY)

    hours_text = default_callee_hours if fields.callee_hours == "default" else fields.callee_hours
    try:
        hours = parse_hours(hours_text) if hours_text else None
    except ValueError as exc:
        raise SpecError("callee_hours", str(exc)) from None

    gaps_given = fields.gap_between_retries
    gaps = (
        (default_gap_minutes,)
        if gaps_given is None
        else tuple(gaps_given)
        if isinstance(gaps_given, list)
        else (gaps_given,)
    )
    return Rules(
        zones=zones,
        window=window,
        days=parse_days(fields.days_of_week),
        callee_zones=number_zones or zones,
        callee_hours=hours,
        carry_over=bool(fields.carry_over),
        retries=fields.number_of_retries or 0,
        gaps=gaps,
    )


def start_instant(fields: TimingFields, rules: Rules, now: datetime) -> datetime:
    """Rule 2: when the job may first be placed, as an instant in UTC."""
    if fields.schedule_at is None:
        return now.astimezone(UTC)
    at = parse_instant(fields.schedule_at)
    if at.tzinfo is not None:
        return at.astimezone(UTC)
    if len(rules.zones) > 1:  # "callee" over several zones: no single wall clock to read it in
        return at.replace(tzinfo=UTC)
    return wall_to_instant(at, rules.zones[0])


@lru_cache(maxsize=4096)
def _cached_rules(timing_json: str, to_number: str, defaults: tuple[str, str | None, int]) -> Rules:
    fields = TimingFields.model_validate(json.loads(timing_json))
    return compile_rules(
        fields,
        to_number,
        default_timezone=defaults[0],
        default_callee_hours=defaults[1],
        default_gap_minutes=defaults[2],
    )


def rules_for(timing: dict[str, Any], to_number: str, settings: Settings) -> Rules:
    """The compiled rules of a stored job; cached, since the dispatch path asks for them per call."""
    return _cached_rules(
        json.dumps(timing, sort_keys=True),
        to_number,
        (settings.default_timezone, settings.callee_hours, settings.default_gap_minutes),
    )
