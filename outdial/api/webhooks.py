"""Provider webhooks: authenticated, stored raw (capped), deduplicated per account, applied once.

Each webhook belongs to the account in its URL and is checked with that account's
secret: it is deduplicated among, and applied only to, that account's calls. The
simulator's public demo secret is refused outside the demo profile. The body is
bounded while it streams in (:mod:`outdial.api.limits`), and the route runs on
threads and database connections of its own, so a burst of API requests cannot
keep a provider waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request

from outdial import logs
from outdial.api.deps import Context, Pool, context
from outdial.api.schemas import WebhookReceipt
from outdial.services.outcomes import record_event
from outdial.services.providers import adapter_for
from outdial.services.providers.accounts import Account
from outdial.services.providers.base import CallEvent, WebhookRefused
from outdial.settings import DEMO_WEBHOOK_SECRET, Profile
from outdial.store.events import UNPARSED

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("outdial.webhooks")

TRUNCATED = "\n[cut: the payload was longer than OUTDIAL_STORED_PAYLOAD_BYTES]"


@router.post(
    "/webhooks/{account_name}",
    response_model=WebhookReceipt,
    summary="Receive a provider's webhook",
    responses={
        400: {"description": "The body could not be read as the provider's webhook (kept for a person to read)."},
        401: {"description": "The signature or shared secret did not check out."},
        404: {"description": "No account of that name."},
    },
)
async def receive(account_name: str, request: Request, ctx: Context = Depends(context)) -> dict[str, Any]:
    """A provider reports on a call. Answered quickly: providers such as CallKaro wait 5 s at most."""
    account = ctx.accounts.get(account_name)
    if account is None:
        raise HTTPException(404, f"no account named {account_name!r}")
    if demo_secret_refused(account, ctx.settings.profile):
        log.warning("webhook refused: demo secret outside the demo profile", extra=logs.fields(account=account_name))
        raise HTTPException(401, "webhook signature or secret did not check out")
    adapter = adapter_for(account.provider)
    body = await request.body()  # bounded while it streams (outdial.api.limits)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "token" in request.query_params:
        headers["x-outdial-token"] = request.query_params["token"]
    try:
        adapter.verify_webhook(account, headers, body, time.time())
    except WebhookRefused as exc:
        log.warning("webhook refused", extra=logs.fields(account=account_name, reason=str(exc)))
        raise HTTPException(401, "webhook signature or secret did not check out") from None
    try:
        call_events = adapter.parse_webhook(body, account)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        # Kept, not lost: a person can read what the provider sent (until it expires).
        digest = hashlib.sha256(body).hexdigest()[:32]
        unparsed = CallEvent(provider_call_id="", event_key=f"unparsed:{digest}", raw_status=UNPARSED, outcome=None)
        await _record(ctx, account, unparsed, body)
        raise HTTPException(400, f"unreadable webhook body: {type(exc).__name__}") from None
    results = [await _record(ctx, account, ev, body) for ev in call_events]
    return {"received": len(call_events), "results": results}


def demo_secret_refused(account: Account, profile: Profile) -> bool:
    """Whether the account's webhook secret is the public demo one while not in the demo profile."""
    secret = account.webhook_secret() or ""
    return profile != Profile.DEMO and hmac.compare_digest(secret.encode(), DEMO_WEBHOOK_SECRET.encode())


def stored_payload(body: bytes, cap: int) -> str:
    """The payload as stored: text, at most ``cap`` bytes of it, saying so when cut."""
    if len(body) <= cap:
        return body.decode("utf-8", errors="replace")
    return body[:cap].decode("utf-8", errors="replace") + TRUNCATED


async def _record(ctx: Context, account: Account, event: CallEvent, body: bytes) -> str:
    payload = stored_payload(body, ctx.settings.stored_payload_bytes)
    now = datetime.now(UTC)
    return await anyio.to_thread.run_sync(
        record_event,
        ctx.hooks_engine,
        account.provider,
        account.name,
        event,
        payload,
        "webhook",
        now,
        ctx.settings,
        limiter=ctx.threads(Pool.WEBHOOKS),
    )
