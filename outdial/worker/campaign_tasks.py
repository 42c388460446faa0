"""The campaign life cycle as Celery tasks, for services that drive campaigns through the broker:
``outdial.pause_campaign``, ``outdial.resume_campaign`` and ``outdial.cancel_campaign``.

Each takes the campaign's ``name`` (and an optional ``reason``) and does exactly what
``outdial campaign pause|resume|cancel`` and ``POST /campaigns/{name}/...`` do, through the
same service. A refusal (no such campaign, a cancelled campaign resumed) fails the task
with its one-line reason and is not retried.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import OperationalError

from outdial.errors import OutdialError
from outdial.services import campaigns
from outdial.store.db import get_engine
from outdial.worker.app import app
from outdial.worker.shown import ShownRequest

PAUSE_TASK = "outdial.pause_campaign"
RESUME_TASK = "outdial.resume_campaign"
CANCEL_TASK = "outdial.cancel_campaign"

# A database briefly away is waited for (each command is idempotent); a refusal is expected
# (``throws``: a failed state with its reason, not an error with a traceback) and never retried.
_OPTIONS: dict[str, Any] = dict(
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
    throws=(OutdialError,),
    Request=ShownRequest,
)


def _result(change: campaigns.CampaignChange) -> dict[str, Any]:
    return {**asdict(change), "state": change.state.value}


@app.task(name=PAUSE_TASK, **_OPTIONS)  # type: ignore[untyped-decorator]
def pause_campaign(name: str, reason: str = "paused through Celery") -> dict[str, Any]:
    return _result(campaigns.pause(get_engine(), name, datetime.now(UTC), reason))


@app.task(name=RESUME_TASK, **_OPTIONS)  # type: ignore[untyped-decorator]
def resume_campaign(name: str) -> dict[str, Any]:
    return _result(campaigns.resume(get_engine(), name, datetime.now(UTC)))


@app.task(name=CANCEL_TASK, **_OPTIONS)  # type: ignore[untyped-decorator]
def cancel_campaign(name: str, reason: str = "cancelled through Celery") -> dict[str, Any]:
    return _result(campaigns.cancel(get_engine(), name, datetime.now(UTC), reason))
