"""Looking up calls whose outcome never came by webhook, through the provider's status API.

A webhook can be lost; a status look-up is read-only and safe to repeat, so
the poller asks about calls accepted a while ago and about ``unknown`` jobs
whose call id we hold, and feeds what it learns through the same path as a
webhook (stored raw, deduplicated, applied once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine

from outdial import logs
from outdial.services.outcomes import record_event
from outdial.services.providers import adapter_for
from outdial.services.providers.accounts import Account
from outdial.services.providers.transport import Timeouts, fetch
from outdial.settings import Settings
from outdial.store import jobs as job_store

log = logging.getLogger("outdial.poller")


@dataclass
class StatusPoller:
    engine: Engine
    settings: Settings
    accounts: dict[str, Account]
    client: httpx.Client

    def poll(self, now: datetime) -> int:
        """One round of look-ups; how many outcomes it learnt."""
        s = self.settings
        # Accounts whose webhooks name the call by an id only a look-up teaches: asked at once.
        prompt = [a.name for a in self.accounts.values() if adapter_for(a.provider).learns_call_ref]
        with self.engine.connect() as conn:
            due = job_store.awaiting_outcome(
                conn,
                accepted_before=now - timedelta(seconds=s.poll_after_s),
                checked_before=now - timedelta(seconds=s.poll_interval_s),
                limit=s.poll_batch,
                prompt_accounts=prompt,
            )
        learnt = 0
        timeouts = Timeouts(s.provider_connect_timeout_s, s.provider_read_timeout_s)
        for job in due:
            account = self.accounts.get(job.account)
            if account is None:
                continue
            adapter = adapter_for(account.provider)
            request = adapter.build_status_request(account, job.provider_call_id)
            if request is None:
                continue
            response = fetch(self.client, request, timeouts)
            if response is not None and response.status_code < 300:
                follow_up = adapter.status_follow_up(account, job.provider_call_id, response)
                if follow_up is not None:
                    response = fetch(self.client, follow_up, timeouts)
            if response is None or response.status_code >= 300:
                continue
            event = adapter.parse_status(job.provider_call_id, response, account)
            if event is not None and (event.outcome is not None or event.call_ref):
                result = record_event(self.engine, account.provider, account.name, event, response.text, "poll", now, s)
                learnt += result == "applied"
                log.info("status look-up", extra=logs.fields(job_id=job.id, account=account.name, reason=result))
        with self.engine.begin() as conn:
            job_store.mark_checked(conn, [j.id for j in due], now)
        return learnt
