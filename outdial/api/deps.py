"""What route handlers share: the engine, settings and accounts the app was made with."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
from fastapi import Request
from sqlalchemy import Engine

from outdial.services.providers.accounts import Account
from outdial.settings import Settings


class Pool(StrEnum):
    """Capacity kept apart: webhooks' threads, POST /calls' threads (so its bursts leave threads for every
    other route), and the key-guarded requests in progress."""

    WEBHOOKS = "webhooks"
    CALLS = "calls"
    # Requests to key-guarded routes being handled at once; the rest wait, unread, in their
    # sockets, so a burst cannot fill the event loop that webhooks are served on.
    API = "api"


@dataclass(frozen=True)
class Context:
    engine: Engine
    settings: Settings
    accounts: dict[str, Account]
    # Webhooks get database connections and threads of their own: providers wait a few
    # seconds at most, and a burst of API requests must not queue them (None: ``engine``).
    webhook_engine: Engine | None = None
    _limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Pool, anyio.CapacityLimiter]] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    @property
    def hooks_engine(self) -> Engine:
        return self.webhook_engine or self.engine

    def threads(self, pool: Pool) -> anyio.CapacityLimiter:
        """The thread limit of ``pool`` in the running event loop (a limiter belongs to one loop)."""
        per_loop = self._limiters.setdefault(asyncio.get_running_loop(), {})
        if pool not in per_loop:
            size = {
                Pool.WEBHOOKS: self.settings.webhook_threads,
                Pool.CALLS: self.settings.api_threads,
                Pool.API: self.settings.api_concurrency,
            }[pool]
            per_loop[pool] = anyio.CapacityLimiter(size)
        return per_loop[pool]


async def context(request: Request) -> Context:
    # Async: a sync dependency costs a hop through the shared thread pool, which a burst of
    # requests fills; webhooks must not wait there.
    ctx: Context = request.app.state.context
    return ctx
