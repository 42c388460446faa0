"""Circuit breakers: an account or campaign failing too often pauses itself until a person resumes it.

The rule is pure (:func:`should_trip`); :class:`BreakerCheck` reads the
recent attempts, opens what trips, and pauses it: an account's due jobs stay
scheduled, a campaign goes to ``paused`` with the reason in its status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from outdial import logs, metrics
from outdial.services import campaigns
from outdial.settings import Settings
from outdial.store import breakers as breaker_store

log = logging.getLogger("outdial.breaker")


def should_trip(calls: int, failures: int, min_calls: int, max_failure_rate: float) -> bool:
    return calls >= min_calls and failures / calls > max_failure_rate


def describe(calls: int, failures: int, window_s: float) -> str:
    return f"circuit breaker: {failures} of {calls} attempts failed in the last {window_s:.0f} s"


@dataclass
class BreakerCheck:
    engine: Engine
    settings: Settings

    def check(self, now: datetime) -> list[tuple[str, str]]:
        """Open the breakers that trip now; the (scope, name) of each one opened."""
        s = self.settings
        window_start = now - timedelta(seconds=s.breaker_window_s)
        opened: list[tuple[str, str]] = []
        with self.engine.begin() as conn:
            resets = breaker_store.reset_points(conn)
            for scope in ("account", "campaign"):
                for name, (calls, failures) in breaker_store.recent_counts(conn, scope, window_start).items():
                    reset_at = resets.get((scope, name))
                    if reset_at is not None and reset_at > window_start:
                        calls, failures = breaker_store.counts_since(conn, scope, name, reset_at)
                    if not should_trip(calls, failures, s.breaker_min_calls, s.breaker_failure_rate):
                        continue
                    reason = describe(calls, failures, s.breaker_window_s)
                    if scope == "campaign" and not campaigns.breaker_pause(conn, int(name), now, reason):
                        continue  # already paused or cancelled by someone: nothing to open
                    if breaker_store.trip(conn, scope, name, reason, now):
                        opened.append((scope, name))
                        metrics.observe_breaker_trip(scope)
                        ids = {"account": name} if scope == "account" else {"campaign_id": name}
                        log.warning("breaker opened", extra=logs.fields(**ids, reason=reason))
        return opened


def resume(engine: Engine, scope: str, name: str, now: datetime) -> None:
    """Close a breaker by hand: an account's by its name; a campaign's by the campaign's name,
    which resumes the campaign too (as ``outdial campaign resume``)."""
    if scope == "campaign":
        with engine.connect() as conn:
            campaign_id = campaigns.find(conn, name).id
        with engine.begin() as conn:
            breaker_store.reset(conn, scope, str(campaign_id), now)
        campaigns.resume(engine, name, now)
        return
    with engine.begin() as conn:
        breaker_store.reset(conn, scope, name, now)
