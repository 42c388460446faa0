"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and answering (on the event loop: no thread to wait for, however busy the API)."""
    return {"status": "ok"}
