"""Request bodies are bounded while they stream in, and only after the caller's key is checked.

A pure ASGI layer in front of the routes: for a route that needs an API key it
checks the key *before* a byte of the body is read (so an unauthenticated client
cannot make the API hold anything), then counts the body as it arrives and
stops at the limit with a 413 that names it. A ``Content-Length`` above the
limit is refused at once. Provider webhooks carry their own authentication
(often a signature over the body), so their body is bounded the same way and
checked by the webhook route.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outdial.api.auth import PRINCIPAL_STATE, UNAUTHORIZED, key_owner, presented_key
from outdial.api.deps import Context, Pool

# The upload route: its limit is the upload limit, every other body's the JSON limit.
UPLOAD_SUFFIX = "/leads"


@dataclass(frozen=True)
class BodyLimit:
    limit: int
    setting: str  # the OUTDIAL_* variable that changes it

    def too_large(self) -> HTTPException:
        return HTTPException(413, f"request body is larger than the {self.limit}-byte limit ({self.setting} sets it)")


class BoundedBodies:
    """The ASGI layer: key first (on guarded routes), then a body no larger than its limit."""

    def __init__(self, app: ASGIApp, context: Context, guarded: Sequence[BaseRoute]) -> None:
        self.app = app
        self.context = context
        self.guarded = guarded

    def limit_for(self, path: str) -> BodyLimit:
        settings = self.context.settings
        if path.endswith(UPLOAD_SUFFIX):
            return BodyLimit(settings.max_upload_bytes, "OUTDIAL_MAX_UPLOAD_BYTES")
        return BodyLimit(settings.max_json_bytes, "OUTDIAL_MAX_JSON_BYTES")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if any(route.matches(scope)[0] == Match.FULL for route in self.guarded):
            # A burst of API requests waits here, its bodies unread, so webhooks keep the event loop.
            async with self.context.threads(Pool.API):
                await self._guarded(scope, receive, send)
            return
        await self._bounded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        presented = presented_key(headers.get("authorization"), headers.get("x-api-key"))
        owner = await run_in_threadpool(key_owner, self.context.engine, presented) if presented else None
        if owner is None:
            await _answer(send, UNAUTHORIZED)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = owner
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        bound = self.limit_for(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > bound.limit:
            await _answer(send, bound.too_large())
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > bound.limit:
                    # Raised inside the route's body read: FastAPI passes an HTTPException on as it is.
                    raise bound.too_large()
            return message

        await self.app(scope, counted, send)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _answer(send: Send, error: HTTPException) -> None:
    body = json.dumps({"detail": error.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
