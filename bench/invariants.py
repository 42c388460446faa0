"""The promises to users, checked after a run from both sides: outdial's database and the providers' counts.

- every job ended (nothing left in flight);
- no attempt placed a call twice;
- every call a provider took is recorded, or its job says the outcome is unknown;
- no number got more calls than its job's budget (1 + retries);
- no request was sent outside its job's effective window;
- no provider saw more calls per second, or more concurrent calls, than its account allows.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from outdial.models import ACTIVE_STATES, Attempt, Job
from outdial.services.providers.accounts import Account
from outdial.services.timing.rules import effective_windows
from outdial.services.timing.spec import rules_for
from outdial.settings import Settings
from outdial.store import table

# Attempts whose request may have reached the provider: answered as taken, or never answered.
MAY_HAVE_PLACED = (None, "accepted", "unknown")


def digits(number: str) -> str:
    """Providers see numbers with or without '+': compare by digits."""
    return re.sub(r"\D", "", number)


@dataclass(frozen=True)
class JobFacts:
    state: str
    number: str
    timing: dict[str, Any]
    recorded_calls: int  # attempts the provider answered as taken
    possible_calls: int  # attempts that may have placed a call
    attempts_sent: int  # distinct attempt numbers with a request that may have placed a call
    request_times: list[datetime]
    job_id: int | None = None


def read_jobs(engine: Engine) -> list[JobFacts]:
    jobs, attempts = table(Job), table(Attempt)
    with engine.connect() as conn:
        job_rows = conn.execute(select(jobs.c.id, jobs.c.state, jobs.c.to_number, jobs.c.timing)).all()
        per_job: dict[int, list[Any]] = defaultdict(list)
        for row in conn.execute(
            select(attempts.c.job_id, attempts.c.number, attempts.c.result, attempts.c.requested_at)
        ):
            per_job[row.job_id].append(row)
    facts = []
    for job in job_rows:
        rows = per_job.get(job.id, [])
        possible = [r for r in rows if r.result in MAY_HAVE_PLACED]
        facts.append(
            JobFacts(
                state=job.state,
                number=job.to_number,
                timing=job.timing,
                recorded_calls=sum(r.result == "accepted" for r in rows),
                possible_calls=len(possible),
                attempts_sent=len({r.number for r in possible}),
                request_times=[r.requested_at for r in possible],
                job_id=job.id,
            )
        )
    return facts


def outside_window(job: JobFacts, settings: Settings) -> list[dict[str, Any]]:
    """Requests of the job sent at an instant its rules do not allow, each with the windows around it."""
    rules = rules_for(job.timing, job.number, settings)
    found = []
    for at in job.request_times:
        windows = effective_windows(rules, at - timedelta(days=1), at + timedelta(days=1))
        if not any(a <= at < b for a, b in windows):
            found.append(
                {"requested_at": at.isoformat(), "windows": [[a.isoformat(), b.isoformat()] for a, b in windows]}
            )
    return found


def outside_window_jobs(jobs: list[JobFacts], settings: Settings) -> list[dict[str, Any]]:
    """Every job with a request outside its window, in full: what a failed run must show."""
    return [
        {"job_id": job.job_id, "number": job.number, "state": job.state, "timing": job.timing, "requests": bad}
        for job in jobs
        if (bad := outside_window(job, settings))
    ]


def check(
    jobs: list[JobFacts],
    sim_stats: dict[str, dict[str, Any]],
    accounts: dict[str, Account],
    settings: Settings,
) -> dict[str, Any]:
    """The report: integers that must be 0 (``max_requests_per_attempt`` at most 1), and the detail."""
    placed: Counter[str] = Counter()
    for stats in sim_stats.values():
        for number, n in stats.get("accepted_by_number", {}).items():
            placed[digits(number)] += n

    states = Counter(job.state for job in jobs)
    worst_attempt = 0
    mismatch = 0
    examples: list[dict[str, Any]] = []
    for job in jobs:
        calls = placed.get(digits(job.number), 0)
        if calls:
            sent = max(job.attempts_sent, 1)
            # More calls than attempts means some attempt was placed at least twice.
            worst_attempt = max(worst_attempt, 1 if calls <= sent else calls - sent + 1)
        # Recorded calls must match; the only allowed gap is requests whose answer was lost.
        if not job.recorded_calls <= calls <= job.possible_calls:
            mismatch += 1
            if len(examples) < 10:
                examples.append(
                    {
                        "number": job.number,
                        "state": job.state,
                        "calls_placed": calls,
                        "recorded": job.recorded_calls,
                        "may_have_placed": job.possible_calls,
                    }
                )

    # The budget, from the providers' side: calls placed to a number against 1 + its retries.
    over_budget: list[dict[str, Any]] = []
    for job in jobs:
        calls = placed.get(digits(job.number), 0)
        budget = 1 + rules_for(job.timing, job.number, settings).retries
        if calls > budget:
            over_budget.append({"number": job.number, "calls_placed": calls, "budget": budget})

    over_rate: dict[str, str] = {}
    over_concurrency: dict[str, str] = {}
    for account in accounts.values():
        stats = sim_stats.get(account.provider, {})
        limit_rate, limit_conc = account.limits.calls_per_second, account.limits.max_concurrent
        seen_rate, seen_conc = stats.get("max_calls_per_second", 0), stats.get("max_active_calls", 0)
        if limit_rate is not None and seen_rate > math.floor(limit_rate + 1e-9):
            over_rate[account.name] = f"{seen_rate} calls in one second, limit {limit_rate}"
        if limit_conc is not None and seen_conc > limit_conc:
            over_concurrency[account.name] = f"{seen_conc} concurrent calls, limit {limit_conc}"

    outside = outside_window_jobs(jobs, settings)
    return {
        "jobs": len(jobs),
        "jobs_by_state": dict(states),
        "jobs_not_terminal": sum(n for s, n in states.items() if s in ACTIVE_STATES),
        "max_requests_per_attempt": worst_attempt,
        "calls_over_budget": len(over_budget),
        "unexplained_request_mismatch": mismatch,
        "calls_outside_window": sum(len(job["requests"]) for job in outside),
        "rate_over_limit": len(over_rate),
        "concurrency_over_limit": len(over_concurrency),
        "calls_placed": sum(placed.values()),
        "attempts_recorded": sum(job.recorded_calls for job in jobs),
        "peaks": {
            name: {
                "max_calls_per_second": sim_stats.get(a.provider, {}).get("max_calls_per_second"),
                "calls_per_second_limit": a.limits.calls_per_second,
                "max_active_calls": sim_stats.get(a.provider, {}).get("max_active_calls"),
                "max_concurrent_limit": a.limits.max_concurrent,
            }
            for name, a in accounts.items()
        },
        "violations": {
            "rate": over_rate,
            "concurrency": over_concurrency,
            "mismatches": examples,
            "over_budget": over_budget[:10],
            "outside_window": outside,
        },
    }
