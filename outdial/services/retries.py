"""What happens to a job after an attempt (SPEC 6): pure decisions, no I/O.

Two budgets are kept apart. A call's outcome (no answer, busy, ...) uses one
of its ``number_of_retries``; transport trouble before the provider took the
request (refused connection, 429, 503) only waits and sends again, capped.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from outdial.services.timing.rules import Closed, Due, Rules, retry_attempt
from outdial.vocab import Outcome

DEFAULT_RETRY_ON = (Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED)


@dataclass(frozen=True)
class Next:
    """The job's next state; ``due``/``window_end`` only when it is scheduled again."""

    state: str
    due: datetime | None = None
    window_end: datetime | None = None
    reason: str | None = None


def after_outcome(
    rules: Rules,
    retry_on: Collection[str],
    outcome: str,
    attempts_used: int,
    attempt_due: datetime,
    attempt_end: datetime,
) -> Next:
    """Schedule the next attempt, or end the job, once attempt ``attempts_used`` had ``outcome``."""
    if outcome not in retry_on:
        return Next("completed", reason=None if outcome == Outcome.COMPLETED else outcome)
    if attempts_used > rules.retries:
        return Next("exhausted", reason=outcome)
    step = retry_attempt(rules, attempts_used, attempt_due, attempt_end)
    if isinstance(step, Closed):
        return Next(step.outcome, reason=step.reason)
    return _scheduled(step)


def _scheduled(step: Due) -> Next:
    return Next("scheduled", step.at, step.window[1])


def transport_backoff(
    resends: int,
    retry_after_s: float | None,
    base_s: float,
    cap_s: float,
    rng: random.Random | None = None,
) -> timedelta:
    """Exponential back-off with full jitter, never shorter than the provider's ``Retry-After``."""
    ceiling = min(cap_s, base_s * 2 ** max(0, resends))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap_s))
    return timedelta(seconds=delay)
