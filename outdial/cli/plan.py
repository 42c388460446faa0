"""``outdial plan``: the timing rules of SPEC 5 as a command."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import typer


def plan_json(raw: str, now: datetime, fail_after_s: float) -> dict[str, object]:
    """The plan of one JSON job spec; raises :class:`SpecError` naming the bad field."""
    from outdial.services.timing.rules import plan as plan_attempts
    from outdial.services.timing.spec import SpecError, compile_rules, load_job_spec, start_instant
    from outdial.settings import get_settings

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SpecError("spec", f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    spec = load_job_spec(data)
    settings = get_settings()
    rules = compile_rules(
        spec,
        spec.to_number,
        default_timezone=settings.default_timezone,
        default_callee_hours=settings.callee_hours,
        default_gap_minutes=settings.default_gap_minutes,
    )
    try:
        result = plan_attempts(rules, start_instant(spec, rules, now), timedelta(seconds=fail_after_s), now)
    except OverflowError:
        # A start within days of year 1 or 9999: the 8-day search leaves the calendar.
        field = "schedule_at" if spec.schedule_at is not None else "--now"
        raise SpecError(field, "too close to the edge of the calendar (years 1-9999) to plan") from None
    # Exactly the SPEC 5 shape: the only reason a plan is rejected is no_callable_window,
    # so a "reason" key would say nothing and break consumers comparing the whole object.
    return {
        "attempts": [a.astimezone(UTC).isoformat() for a in result.attempts],
        "outcome": result.outcome,
    }


def plan(
    now: str | None = typer.Option(None, "--now", help="The current instant (ISO 8601; naive means UTC)."),
    fail_after: float = typer.Option(0.0, "--fail-after", help="Seconds after its start each attempt fails."),
) -> None:
    """Read one job spec (JSON) on stdin and print when each attempt would be placed."""
    from outdial.services.timing.spec import SpecError, parse_instant

    if fail_after < 0:
        raise SpecError("--fail-after", "must not be negative")
    try:
        current = parse_instant(now) if now else datetime.now(UTC)
    except ValueError as exc:
        raise SpecError("--now", str(exc)) from None
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    result = plan_json(sys.stdin.read(), current, fail_after)
    typer.echo(json.dumps(result))
