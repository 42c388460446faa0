"""One process, one port, every provider's simulator at its documented paths (``outdial simulator``)."""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

import outdial.simulator
from outdial.simulator.base import ARRIVAL, Dropped, ProviderSim, webhook_client

_NOT_SIMULATORS = {"app", "base"}


def simulators() -> dict[str, ProviderSim]:
    found: dict[str, ProviderSim] = {}
    for info in pkgutil.iter_modules(outdial.simulator.__path__):
        if info.name.startswith("_") or info.name in _NOT_SIMULATORS:
            continue
        sim = getattr(importlib.import_module(f"outdial.simulator.{info.name}"), "SIMULATOR", None)
        if isinstance(sim, ProviderSim):
            found[sim.name] = sim
    return found


class DropConnection:
    """Closes the connection without an answer when a handler raises :class:`Dropped`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ARRIVAL.set(time.monotonic())
        try:
            await self.app(scope, receive, send)
        except Dropped:
            # Raising out of the ASGI app makes the server abort the connection unanswered.
            raise ConnectionAbortedError("simulated dropped connection") from None


def create_app(config: dict[str, dict[str, Any]] | None = None) -> Any:
    sims = simulators()
    for name, changes in (config or {}).items():
        if name in sims:
            sims[name].configure(changes)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Made before the first call: building it loads a CA bundle, which would block the
        # event loop just as the first calls arrive and skew the times they are counted at.
        webhook_client()
        yield

    app = FastAPI(title="outdial provider simulator", lifespan=lifespan)
    for sim in sims.values():
        app.include_router(sim.router)

    @app.get("/_sim/stats")
    def stats(times: bool = False) -> dict[str, Any]:
        """Requests and calls per provider; with ``times``, when each call was accepted (seconds)."""
        out = {name: sim.stats() for name, sim in sims.items()}
        if times:
            for name, sim in sims.items():
                out[name]["accept_times"] = list(sim.accept_times)
        return {"providers": out}

    @app.post("/_sim/config/{provider}")
    async def configure(provider: str, request: Request) -> dict[str, Any]:
        if provider not in sims:
            raise HTTPException(404, f"no simulator for {provider}")
        sims[provider].configure(await request.json())
        return sims[provider].config.model_dump()

    @app.post("/_sim/reset")
    def reset() -> Response:
        for sim in sims.values():
            sim.reset()
        return Response(status_code=204)

    @app.get("/_sim/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.state.simulators = sims
    return DropConnection(app)
