"""Prometheus metrics: what the workers count, and what the API computes when it is scraped.

Counters and histograms are observed where the work happens (the worker's
dispatch, the reliability code's pacing and breakers). With several worker
processes, set ``PROMETHEUS_MULTIPROC_DIR`` to a directory every outdial
process on the host shares (empty it before they start): each process then
writes its values to files there, and the API's ``/metrics`` adds them up.
``outdial up`` (the :class:`outdial.stack.Stack`) does this by itself, under
the data directory. Without it, each process keeps its own values in memory
(fine for tests and a single process).

Every counter's labels are made up front (:func:`initialise`), so a counter
that has not moved reads 0 rather than "No data".

Jobs per state, jobs per campaign, due jobs, open breakers and the queue
depth are not counted anywhere: they are read from the database and Redis at
scrape time, so they are right whatever process changed them. Campaign names
are a label only there, and only for campaigns not yet ended, so their number
stays bounded by the campaigns in use.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from prometheus_client import Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_T = TypeVar("_T")


def _process_id() -> str:
    # Files are named after this. Containers sharing one metrics volume all have a pid 1,
    # so the host name keeps their files apart (no "_": the collector splits names on it).
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


if os.environ.get(MULTIPROC_ENV):
    # Must be in place before the metrics below are made: each reads ValueClass when created.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)  # type: ignore[no-untyped-call]


# Seconds; a provider answers a create-call in tens to hundreds of ms, or times out after 15 s.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
# Seconds between a job being due and its request leaving: ~0.5 s when healthy, minutes when behind.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

ATTEMPTS = Counter(
    "outdial_attempts",
    "Requests sent to providers, by provider and result (accepted, retry_safe, unknown, rejected).",
    ["provider", "result"],
)
PROVIDER_LATENCY = Histogram(
    "outdial_provider_latency_seconds",
    "Time a provider took to answer a create-call request.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
DISPATCH_LATENESS = Histogram(
    "outdial_dispatch_lateness_seconds",
    "Request time minus the job's due time.",
    ["provider"],
    buckets=LATENESS_BUCKETS,
)
PACING_WAITS = Counter(
    "outdial_pacing_waits",
    "Dispatches held back because an account's rate or concurrency limit was reached.",
    ["account"],
)
BREAKER_TRIPS = Counter(
    "outdial_circuit_breaker_trips",
    "Circuit breakers opened, by scope (account or campaign).",
    ["scope"],
)
OUTCOMES = Counter(
    "outdial_call_outcomes",
    "Placed calls' outcomes as the providers reported them (completed, no_answer, busy, voicemail, failed).",
    ["provider", "outcome"],
)

LEASE_UNKNOWNS = Counter(
    "outdial_lease_unknowns",
    "Jobs the scheduler's leases ended unknown: a worker lost during the request (dialing), or an "
    "accepted call whose outcome never came (accepted). Each may have rung; none is redialled blindly.",
    ["stage"],
)

DIAL_RESULTS = ("accepted", "retry_safe", "unknown", "rejected")
LEASE_STAGES = ("dialing", "accepted")
CALL_OUTCOMES = ("completed", "no_answer", "busy", "voicemail", "failed")
BREAKER_SCOPES = ("account", "campaign")


def initialise(providers: Iterable[str], accounts: Iterable[str]) -> None:
    """Make every label combination of the counters and histograms, at 0, in this process."""
    for provider in providers:
        PROVIDER_LATENCY.labels(provider)
        DISPATCH_LATENESS.labels(provider)
        for result in DIAL_RESULTS:
            ATTEMPTS.labels(provider, result)
        for outcome in CALL_OUTCOMES:
            OUTCOMES.labels(provider, outcome)
    for account in accounts:
        PACING_WAITS.labels(account)
    for scope in BREAKER_SCOPES:
        BREAKER_TRIPS.labels(scope)
    for stage in LEASE_STAGES:
        LEASE_UNKNOWNS.labels(stage)


def observe_dial(
    provider: str, result: str, latency_ms: float, due_at: datetime | None, requested_at: datetime
) -> None:
    """One request to a provider and its answer."""
    ATTEMPTS.labels(provider, result).inc()
    PROVIDER_LATENCY.labels(provider).observe(latency_ms / 1000)
    if due_at is not None:
        DISPATCH_LATENESS.labels(provider).observe(max(0.0, (requested_at - due_at).total_seconds()))


def observe_lease_unknowns(stage: str, jobs: int) -> None:
    if jobs:
        LEASE_UNKNOWNS.labels(stage).inc(jobs)


def observe_pacing_wait(account: str) -> None:
    PACING_WAITS.labels(account).inc()


def observe_breaker_trip(scope: str) -> None:
    BREAKER_TRIPS.labels(scope).inc()


def observe_outcome(provider: str, outcome: str) -> None:
    OUTCOMES.labels(provider, outcome).inc()


@dataclass(frozen=True)
class CampaignJobs:
    """One campaign not yet ended: its state, and its jobs per state."""

    state: str
    jobs: Mapping[str, int]


class ScrapeTimeCollector(Collector):
    """Gauges read when scraped: jobs per state, open breakers per scope, dispatch queue depth.

    Each reader is a plain function, so this class holds no SQL or Redis code;
    a reader that fails (database down) leaves its gauge out of that scrape
    rather than failing the whole scrape.
    """

    def __init__(
        self,
        jobs_by_state: Callable[[], dict[str, int]],
        open_breakers: Callable[[], dict[str, int]],
        queue_depth: Callable[[], dict[str, int]],
        states: Iterable[str],
        campaigns: Callable[[], dict[str, CampaignJobs]] | None = None,
        due_now: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.jobs_by_state = jobs_by_state
        self.open_breakers = open_breakers
        self.queue_depth = queue_depth
        self.states = list(states)
        self.campaigns = campaigns
        self.due_now = due_now

    def describe(self) -> Iterable[Metric]:
        return []  # collected fresh on each scrape; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        counts = _safely(self.jobs_by_state)
        if counts is not None:
            jobs = GaugeMetricFamily("outdial_jobs", "Jobs in each state, from the database.", labels=["state"])
            for state in self.states:
                jobs.add_metric([state], counts.get(state, 0))
            yield jobs
        breakers = _safely(self.open_breakers)
        if breakers is not None:
            gauge = GaugeMetricFamily(
                "outdial_circuit_breakers_open", "Circuit breakers open now, by scope.", labels=["scope"]
            )
            for scope in ("account", "campaign"):
                gauge.add_metric([scope], breakers.get(scope, 0))
            yield gauge
        depth = _safely(self.queue_depth)
        if depth is not None:
            queue = GaugeMetricFamily(
                "outdial_queue_depth", "Dispatch messages waiting in the broker, by queue.", labels=["queue"]
            )
            for name, n in depth.items():
                queue.add_metric([name], n)
            yield queue
        yield from self._per_campaign()
        due = _safely(self.due_now) if self.due_now is not None else None
        if due is not None:
            gauge = GaugeMetricFamily(
                "outdial_jobs_due",
                "Jobs due now that the scheduler may claim (active campaigns, breaker closed), by account.",
                labels=["account"],
            )
            for account, n in due.items():
                gauge.add_metric([account], n)
            yield gauge

    def _per_campaign(self) -> Iterable[Metric]:
        found = _safely(self.campaigns) if self.campaigns is not None else None
        if found is None:
            return
        jobs = GaugeMetricFamily(
            "outdial_campaign_jobs",
            "Jobs of each campaign not yet ended (active or paused), by state; the campaign's own state is a label.",
            labels=["campaign", "campaign_state", "state"],
        )
        for name, campaign in found.items():
            for state in self.states:
                jobs.add_metric([name, campaign.state, state], campaign.jobs.get(state, 0))
        yield jobs


def _safely(read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except Exception:
        return None
