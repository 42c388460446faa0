"""Sending an adapter's request: explicit time-outs, and transport failures classified.

Whether a failed request may be sent again depends on whether it can have
reached the provider: a refused connection cannot, a read time-out can.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from outdial.services.providers.base import Adapter, DialResult, Verdict


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0
    read_s: float = 15.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_s, read=self.read_s, write=self.read_s, pool=self.connect_s)


def classify_exception(exc: httpx.HTTPError) -> DialResult:
    """A transport failure as a verdict: retry-safe only when nothing can have left."""
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol):
        return DialResult(Verdict.RETRY_SAFE, error_code=name, message=str(exc) or name)
    # Read/write time-outs, dropped connections, protocol errors: the request may have
    # been received and acted on.
    return DialResult(Verdict.UNKNOWN, error_code=name, message=str(exc) or name)


@dataclass(frozen=True)
class Sent:
    result: DialResult
    latency_ms: float
    # When the request body was fully written (time.monotonic()), None if it never was:
    # the moment the provider may have it, which pacing counts by.
    written_at: float | None = None


def send(client: httpx.Client, adapter: Adapter, request: httpx.Request, timeouts: Timeouts) -> Sent:
    request.extensions["timeout"] = timeouts.httpx().as_dict()
    written: list[float] = []

    def trace(event: str, _info: dict[str, object]) -> None:
        if event.endswith("send_request_body.complete"):
            written.append(time.monotonic())

    request.extensions["trace"] = trace
    started = time.perf_counter()
    try:
        response = client.send(request)
    except httpx.HTTPError as exc:
        return Sent(classify_exception(exc), (time.perf_counter() - started) * 1000, written[0] if written else None)
    latency = (time.perf_counter() - started) * 1000
    return Sent(adapter.parse_response(response), latency, written[0] if written else None)


def fetch(client: httpx.Client, request: httpx.Request, timeouts: Timeouts) -> httpx.Response | None:
    """A read-only request (status look-up); None when it fails in transport."""
    request.extensions["timeout"] = timeouts.httpx().as_dict()
    try:
        return client.send(request)
    except httpx.HTTPError:
        return None
