"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter

from outdial.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up and answering (on the event loop: no thread to wait for, however busy the API)."""
    return {"status": "ok"}
