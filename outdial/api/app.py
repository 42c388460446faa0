"""The HTTP API (``outdial api``): one FastAPI app made of one router per subject."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from sqlalchemy import Engine

from outdial import __version__, metrics
from outdial.api import campaigns, docs, errors, health, jobs, leads, ops, ui, webhooks
from outdial.api.auth import require_api_key
from outdial.api.deps import Context
from outdial.api.limits import BoundedBodies
from outdial.services.providers.accounts import Account, load_accounts
from outdial.settings import Settings, get_settings
from outdial.store.db import engine_for, make_engine


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    accounts: dict[str, Account] | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    # /docs and /redoc come from the package's own copies (outdial.api.docs), not a CDN.
    app = FastAPI(
        title="outdial",
        version=__version__,
        description="Outbound AI-voice call campaigns.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = ctx = Context(
        engine=engine or engine_for(settings.resolved_database_url()),
        settings=settings,
        accounts=accounts if accounts is not None else load_accounts(settings.accounts_file),
        # A pool of their own for webhooks (a given engine, as in tests, is shared).
        webhook_engine=None
        if engine is not None
        else make_engine(settings.resolved_database_url(), pool_size=settings.webhook_threads),
    )
    docs.install(app)
    # Counters read 0, not "No data", before anything happened (the API records outcomes too).
    metrics.initialise({a.provider for a in ctx.accounts.values()}, ctx.accounts)
    errors.install(app)
    # Open: liveness, readiness, metrics, the read-only campaign page, and provider
    # webhooks (each checked by its provider's own signature or secret).
    for module in (health, webhooks, ops, ui):
        app.include_router(module.router)
    # Everything else needs an API key.
    guarded = (jobs, campaigns, leads)
    for module in guarded:
        app.include_router(module.router, dependencies=[Depends(require_api_key)])
    # Keys are checked before a body is read, and bodies are bounded as they stream in.
    app.add_middleware(BoundedBodies, context=ctx, guarded=[r for m in guarded for r in m.router.routes])
    return app
