"""What every provider simulator shares: behaviour knobs, request counts, and outcomes delivered later.

A provider's simulator module defines ``SIMULATOR = ProviderSim(...)`` with a
FastAPI router at the provider's documented paths; the app mounts every one
it finds. Handlers call :meth:`ProviderSim.admit` first (latency, rate and
concurrency limits, injected faults, counting), then validate as the
provider's document says, then :meth:`ProviderSim.accept` the call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import random
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from outdial.settings import DEMO_WEBHOOK_SECRET as DEMO_WEBHOOK_SECRET  # where the tests and the stack look for it
from outdial.vocab import Outcome

log = logging.getLogger("outdial.simulator")

# When the request being handled arrived (time.monotonic()), set by the app's outermost layer:
# calls are timed by their arrival, as a provider's limits count them, not by when the
# simulated latency and validation are done.
ARRIVAL: contextvars.ContextVar[float] = contextvars.ContextVar("arrival")


class SimConfig(BaseModel):
    """One provider's simulated behaviour; every knob can be changed at run time (``POST /_sim/config``)."""

    latency_ms: float = Field(default=0.0, ge=0)
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    error_5xx_rate: float = Field(default=0.0, ge=0, le=1)
    rate_429_rate: float = Field(default=0.0, ge=0, le=1)  # 429s injected regardless of the limit
    timeout_rate: float = Field(default=0.0, ge=0, le=1)  # hang for timeout_s after accepting
    timeout_s: float = Field(default=30.0, ge=0)
    drop_rate: float = Field(default=0.0, ge=0, le=1)  # accept, then drop the connection unanswered
    outcome_mix: dict[str, float] = Field(default_factory=lambda: {"completed": 1.0})
    outcome_delay_s: float = Field(default=1.0, ge=0)
    call_duration_s: float = Field(default=30.0, ge=0)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int | None = None
    # The provider's documented rate and concurrency limits (off by default, for load tests);
    # an explicit rate_limit_per_minute / max_concurrent overrides them.
    documented_limits: bool = False


@dataclass
class SimCall:
    call_id: str
    to: str
    started: datetime
    outcome: str
    meta: dict[str, Any] = field(default_factory=dict)
    ended: datetime | None = None  # set when the outcome is reached


class Dropped(Exception):
    """Raised by a handler to close the connection without an answer."""


@dataclass
class ProviderSim:
    name: str
    router: APIRouter
    # The webhook this provider posts: (call, config) -> (json body, headers); None if it has no webhooks.
    webhook: Callable[[SimCall, SimConfig], tuple[dict[str, Any], dict[str, str]]] | None = None
    default_account: str = ""
    # The public demo credentials it accepts, by the credential names of the accounts file.
    demo_credentials: dict[str, str] = field(default_factory=dict)
    # The provider's own 429 and 5xx answers; (retry_after_s) -> response and () -> response.
    rate_limited: Callable[[float], Response] | None = None
    server_error: Callable[[], Response] | None = None
    config: SimConfig = field(default_factory=SimConfig)
    # What the provider's documents say it allows (None: no limit documented).
    documented_rate_per_minute: int | None = None
    documented_max_concurrent: int | None = None
    requests: Counter[str] = field(default_factory=Counter)  # per phone number
    accepted: Counter[str] = field(default_factory=Counter)
    calls: dict[str, SimCall] = field(default_factory=dict)
    in_flight: int = 0  # HTTP requests being answered
    active: int = 0  # calls placed and not yet over: what a provider's concurrency limit counts
    max_active: int = 0
    accept_times: list[float] = field(default_factory=list)  # monotonic, for the calls-per-second peak
    window: deque[float] = field(default_factory=deque)
    rng: random.Random = field(default_factory=random.Random)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def configure(self, changes: dict[str, Any]) -> None:
        self.config = self.config.model_copy(
            update=SimConfig.model_validate({**self.config.model_dump(), **changes}).model_dump()
        )
        if self.config.seed is not None:
            self.rng.seed(self.config.seed)

    def reset(self) -> None:
        self.requests.clear()
        self.accepted.clear()
        self.calls.clear()
        self.window.clear()
        self.accept_times.clear()
        self.max_active = self.active

    def stats(self) -> dict[str, Any]:
        return {
            "requests": sum(self.requests.values()),
            "accepted": sum(self.accepted.values()),
            "by_number": dict(self.requests),
            "accepted_by_number": dict(self.accepted),
            "in_flight": self.in_flight,
            "active_calls": self.active,
            "max_active_calls": self.max_active,
            "max_calls_per_second": max_in_window(self.accept_times, 1.0),
            # From the first accepted call to the last: the long-run rate is (accepted - 1) / span.
            "accept_span_s": (max(self.accept_times) - min(self.accept_times)) if self.accept_times else 0.0,
        }

    def limits(self) -> tuple[int | None, int | None]:
        """(requests per minute, concurrent calls) in force: the configured ones, else the documented."""
        cfg = self.config
        rate, concurrent = cfg.rate_limit_per_minute, cfg.max_concurrent
        if cfg.documented_limits:
            rate = rate if rate is not None else self.documented_rate_per_minute
            concurrent = concurrent if concurrent is not None else self.documented_max_concurrent
        return rate, concurrent

    async def admit(
        self, to: str, handle: Callable[[], Awaitable[Response]], denied: Response | None = None
    ) -> Response:
        """Count the request, apply the configured limits and faults, then run ``handle``.

        ``denied``: the answer to a request that failed authentication. It is given before
        any limit is counted, as a provider counts limits per authenticated key.
        """
        cfg = self.config
        self.requests[to] += 1
        if cfg.latency_ms:
            await asyncio.sleep(cfg.latency_ms / 1000)
        if denied is not None:
            return denied
        rate, concurrent = self.limits()
        if rate is not None:
            now = time.monotonic()
            while self.window and now - self.window[0] >= 60:
                self.window.popleft()
            if len(self.window) >= rate:
                return self.too_many(60 - (now - self.window[0]))
            self.window.append(now)
        if self.rng.random() < cfg.rate_429_rate:
            return self.too_many(1.0)
        if concurrent is not None and self.active >= concurrent:
            return self.too_many(1.0)
        if self.rng.random() < cfg.error_5xx_rate:
            if self.server_error is not None:
                return self.server_error()
            return JSONResponse({"status": "error", "message": "Server error"}, status_code=500)
        self.in_flight += 1
        try:
            response = await handle()
            if self.rng.random() < cfg.timeout_rate:
                await asyncio.sleep(cfg.timeout_s)
            if self.rng.random() < cfg.drop_rate:
                raise Dropped()
            return response
        finally:
            self.in_flight -= 1

    def too_many(self, retry_after: float) -> Response:
        if self.rate_limited is not None:
            return self.rate_limited(retry_after)
        return JSONResponse(
            {"status": "error", "message": "Too many requests"},
            status_code=429,
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )

    def accept(self, to: str, meta: dict[str, Any] | None = None) -> SimCall:
        """Register a placed call and schedule its outcome."""
        call = SimCall(
            call_id=uuid.uuid4().hex[:20],
            to=to,
            started=datetime.now(UTC),
            outcome=self.pick_outcome(),
            meta=meta or {},
        )
        self.calls[call.call_id] = call
        self.accepted[to] += 1
        self.accept_times.append(ARRIVAL.get(time.monotonic()))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        task = asyncio.get_running_loop().create_task(self._finish(call))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return call

    def pick_outcome(self) -> str:
        mix = {k: v for k, v in self.config.outcome_mix.items() if k in set(Outcome) and v > 0} or {"completed": 1}
        return self.rng.choices(list(mix), weights=list(mix.values()))[0]

    async def _finish(self, call: SimCall) -> None:
        await asyncio.sleep(self.config.outcome_delay_s)
        call.ended = datetime.now(UTC)
        self.active -= 1
        if self.webhook is None:
            return
        url = call.meta.get("callback_url") or self.config.webhook_url or default_webhook_url(self.default_account)
        body, headers = self.webhook(call, self.config)
        copies = 2 if self.rng.random() < self.config.webhook_duplicate_rate else 1
        for _ in range(copies):
            await post_webhook(url, body, headers)


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def webhook_client() -> httpx.AsyncClient:
    """One client per event loop, kept: making one builds an SSL context, which blocks the loop for
    tens of milliseconds and would show up as jitter in every call the simulator times."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = httpx.AsyncClient(timeout=10)
    return client


async def post_webhook(url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    await _post_with_retries(webhook_client(), url, body, headers)


async def _post_with_retries(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    """Providers retry failed webhooks; so does the simulator, a few times."""
    for delay in (0.0, 1.0, 3.0, 10.0):
        await asyncio.sleep(delay)
        try:
            response = await client.post(url, json=body, headers=headers)
            if response.status_code < 500:
                return
        except httpx.HTTPError as exc:
            log.warning("webhook to %s failed: %s", url, exc)


def max_in_window(times: list[float], width: float) -> int:
    """The most events in any half-open window ``[t, t + width)``."""
    best = start = 0
    ordered = sorted(times)
    for end, t in enumerate(ordered):
        while t - ordered[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def default_webhook_url(account: str) -> str:
    base = os.environ.get("OUTDIAL_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/webhooks/{account}"


def webhook_secret(config: SimConfig) -> str:
    return config.webhook_secret or os.environ.get("OUTDIAL_SIM_WEBHOOK_SECRET", DEMO_WEBHOOK_SECRET)
