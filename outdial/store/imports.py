"""Lead lists uploaded over HTTP: one row per upload, moved queued -> running -> done | failed.

Each move is conditional on the state it leaves, so a second delivery of the
import task, or a late progress report, cannot undo an ending.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from outdial.models import Campaign, ImportState, LeadImport
from outdial.store import AnyRow, table

imports = table(LeadImport)
campaigns = table(Campaign)

# A worker may take an import that is queued, or running (a worker that died mid-import committed
# nothing on PostgreSQL, and leads already imported are duplicates the second time).
_TAKEABLE = (ImportState.QUEUED, ImportState.RUNNING)


def create(
    conn: Connection,
    import_id: str,
    campaign_id: int,
    file_name: str | None,
    options: dict[str, Any],
    uploaded_by: str | None,
    now: datetime,
) -> None:
    conn.execute(
        insert(imports).values(
            id=import_id,
            campaign_id=campaign_id,
            state=ImportState.QUEUED,
            file_name=file_name,
            options=options,
            uploaded_by=uploaded_by,
            rows=0,
            accepted=0,
            rejected=0,
            duplicates=0,
            suppressed=0,
            has_report=False,
            created_at=now,
        )
    )


def by_id(conn: Connection, import_id: str) -> AnyRow | None:
    """The import with its campaign's name (``campaign``)."""
    query = (
        select(imports, campaigns.c.name.label("campaign"))
        .join(campaigns, campaigns.c.id == imports.c.campaign_id)
        .where(imports.c.id == import_id)
    )
    return conn.execute(query).first()


def of_campaign(conn: Connection, campaign_id: int, limit: int) -> Sequence[AnyRow]:
    """The campaign's latest imports, newest first."""
    query = (
        select(imports, campaigns.c.name.label("campaign"))
        .join(campaigns, campaigns.c.id == imports.c.campaign_id)
        .where(imports.c.campaign_id == campaign_id)
        .order_by(imports.c.created_at.desc(), imports.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def start(conn: Connection, import_id: str, now: datetime) -> bool:
    """Take the import for a run; False when it has already ended (or does not exist)."""
    moved = conn.execute(
        update(imports)
        .where(imports.c.id == import_id, imports.c.state.in_(_TAKEABLE))
        .values(state=ImportState.RUNNING, started_at=now, error=None)
    )
    return moved.rowcount == 1


def record_progress(conn: Connection, import_id: str, rows: int, accepted: int, rejected: int) -> None:
    conn.execute(
        update(imports)
        .where(imports.c.id == import_id, imports.c.state == ImportState.RUNNING)
        .values(rows=rows, accepted=accepted, rejected=rejected)
    )


def finish(conn: Connection, import_id: str, counts: dict[str, int], has_report: bool, now: datetime) -> bool:
    """Record the summary (rows, accepted, rejected, duplicates, suppressed) of a run that ended."""
    moved = conn.execute(
        update(imports)
        .where(imports.c.id == import_id, imports.c.state == ImportState.RUNNING)
        .values(state=ImportState.DONE, has_report=has_report, finished_at=now, **counts)
    )
    return moved.rowcount == 1


def fail(conn: Connection, import_id: str, error: str, now: datetime) -> bool:
    """End an import that imported nothing, with the one-line reason."""
    moved = conn.execute(
        update(imports)
        .where(imports.c.id == import_id, imports.c.state.in_(_TAKEABLE))
        .values(state=ImportState.FAILED, error=error, finished_at=now, rows=0, accepted=0, rejected=0)
    )
    return moved.rowcount == 1
