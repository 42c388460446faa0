"""Provider webhooks: authenticated, stored raw, deduplicated, applied once."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from outdial import logs
from outdial.api.deps import Context, context
from outdial.services.outcomes import record_event
from outdial.services.providers import adapter_for
from outdial.services.providers.base import CallEvent, WebhookRefused

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("outdial.webhooks")


@router.post("/webhooks/{account_name}")
async def receive(account_name: str, request: Request, ctx: Context = Depends(context)) -> dict[str, Any]:
    """A provider reports on a call. Answered quickly: providers such as CallKaro wait 5 s at most."""
    account = ctx.accounts.get(account_name)
    if account is None:
        raise HTTPException(404, f"no account named {account_name!r}")
    adapter = adapter_for(account.provider)
    body = await request.body()
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
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # Kept, not lost: a person can read what the provider sent.
        digest = hashlib.sha256(body).hexdigest()[:32]
        unparsed = CallEvent(provider_call_id="", event_key=f"unparsed:{digest}", raw_status="unparsed", outcome=None)
        await _record(ctx, account.provider, account_name, unparsed, body)
        raise HTTPException(400, f"unreadable webhook body: {exc}") from None
    results = [await _record(ctx, account.provider, account_name, ev, body) for ev in call_events]
    return {"received": len(call_events), "results": results}


async def _record(ctx: Context, provider: str, account: str, event: CallEvent, body: bytes) -> str:
    payload = body.decode("utf-8", errors="replace")
    now = datetime.now(UTC)
    return await run_in_threadpool(
        record_event, ctx.engine, provider, account, event, payload, "webhook", now, ctx.settings
    )
