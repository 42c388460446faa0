"""Looking up calls whose outcome never came by webhook, through the provider's status API.

A webhook can be lost; a status look-up is read-only and safe to repeat, so
the poller asks about calls accepted a while ago and about ``unknown`` jobs
whose call id we hold, and feeds what it learns through the same path as a
webhook (stored raw, deduplicated, applied once). Where a provider's look-up
reports result fields its webhook lacks (``Adapter.lookup_result_fields``), it
also asks about calls that ended without them, a bounded few times; what it
learns is added to the call's result data, never to its outcome.
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
from outdial.vocab import Outcome

log = logging.getLogger("outdial.poller")

# Calls someone answered (a person or a machine): only they have a recording, transcript or summary
# to look up; asking about the others would only spend the provider's look-ups.
CONNECTED = (Outcome.COMPLETED, Outcome.VOICEMAIL)


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
        # Accounts whose look-up reports result fields their webhook lacks: ended calls are asked again.
        wanted = {
            a.name: adapter_for(a.provider).lookup_result_fields
            for a in self.accounts.values()
            if adapter_for(a.provider).lookup_result_fields
        }
        with self.engine.connect() as conn:
            due = list(
                job_store.awaiting_outcome(
                    conn,
                    accepted_before=now - timedelta(seconds=s.poll_after_s),
                    checked_before=now - timedelta(seconds=s.poll_interval_s),
                    limit=s.poll_batch,
                    prompt_accounts=prompt,
                )
            )
            if wanted and len(due) < s.poll_batch:
                # Outcomes first: result data only fills what the batch leaves.
                due += job_store.lacking_results(
                    conn,
                    wanted,
                    CONNECTED,
                    placed_after=now - timedelta(seconds=s.result_lookup_max_age_s),
                    checked_before=now - timedelta(seconds=s.result_lookup_interval_s),
                    limit=s.poll_batch - len(due),
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
