"""A new job's first due time: the timing layers merged, compiled and applied (rules 1-5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from outdial.services.timing.rules import Closed, first_attempt
from outdial.services.timing.spec import TimingFields, compile_rules, start_instant
from outdial.settings import Settings


@dataclass(frozen=True)
class Admission:
    timing: dict[str, Any]  # the merged layers, stored with the job
    state: str  # scheduled | rejected
    priority: int
    next_due_at: datetime | None
    window_end: datetime | None
    reason: str | None


def merge_layers(*layers: dict[str, Any]) -> TimingFields:
    """Campaign, then lead, then job: later layers win field by field (rule 1's order for zones)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return TimingFields.model_validate(merged)


def admit(fields: TimingFields, to_number: str, now: datetime, settings: Settings) -> Admission:
    """Raises :class:`outdial.services.timing.spec.SpecError` for a spec that can never be valid."""
    rules = compile_rules(
        fields,
        to_number,
        default_timezone=settings.default_timezone,
        default_callee_hours=settings.callee_hours,
        default_gap_minutes=settings.default_gap_minutes,
    )
    step = first_attempt(rules, start_instant(fields, rules, now), now)
    timing = fields.given()
    priority = fields.priority or 0
    if isinstance(step, Closed):
        return Admission(timing, step.outcome, priority, None, None, step.reason)
    return Admission(timing, "scheduled", priority, step.at, step.window[1], None)
