"""Lead lists uploaded over HTTP: one row per upload, moved queued -> running -> done | failed.

Each move is conditional on the state it leaves, so a second delivery of the
import task, or a late progress report, cannot undo an ending. A running
import is taken by another run only once its heartbeat (``progress_at``) is
stale, so two live runs of one import never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, insert, or_, select, update

from outdial.models import Campaign, ImportState, LeadImport
from outdial.store import AnyRow, table

imports = table(LeadImport)
campaigns = table(Campaign)

_UNENDED = (ImportState.QUEUED, ImportState.RUNNING)


def _stale(stale_before: datetime) -> ColumnElement[bool]:
    # No heartbeat at all: a run started before heartbeats existed (migration 0009), long gone.
    return or_(imports.c.progress_at.is_(None), imports.c.progress_at < stale_before)


def _takeable(stale_before: datetime) -> ColumnElement[bool]:
    """Queued, or running with a stale heartbeat: a worker that died mid-import committed
    nothing on PostgreSQL, and on SQLite the leads it wrote are duplicates the second time."""
    return or_(
        imports.c.state == ImportState.QUEUED,
        and_(imports.c.state == ImportState.RUNNING, _stale(stale_before)),
    )


def _lost(sent_before: datetime, stale_before: datetime) -> ColumnElement[bool]:
    """Takeable, and no task for it sent since ``sent_before``: the last one sent was lost.

    The API's send counts as made at ``created_at``. A running import's own start comes
    after its last send, so a stale one is lost only once the send before it is old too.
    """
    last_send = func.coalesce(imports.c.sent_at, imports.c.created_at)
    return and_(_takeable(stale_before), last_send < sent_before)


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


def start(conn: Connection, import_id: str, now: datetime, stale_before: datetime) -> bool:
    """Take the import for a run, its heartbeat set to ``now``: a queued one, or a running one whose
    heartbeat is older than ``stale_before``. False when it has ended, another run is alive, or it
    does not exist. On PostgreSQL, a second run's UPDATE waits for the first's and then sees its
    fresh heartbeat; SQLite's writers take turns."""
    moved = conn.execute(
        update(imports)
        .where(imports.c.id == import_id, _takeable(stale_before))
        .values(state=ImportState.RUNNING, started_at=now, progress_at=now, error=None)
    )
    return moved.rowcount == 1


def record_progress(conn: Connection, import_id: str, rows: int, accepted: int, rejected: int, now: datetime) -> None:
    """The counts so far, and the heartbeat that keeps the run from being taken over."""
    conn.execute(
        update(imports)
        .where(imports.c.id == import_id, imports.c.state == ImportState.RUNNING)
        .values(rows=rows, accepted=accepted, rejected=rejected, progress_at=now)
    )


def finish(conn: Connection, import_id: str, counts: dict[str, int], has_report: bool, now: datetime) -> bool:
    """Record the summary (rows, accepted, rejected, duplicates, suppressed) of a run that ended."""
    moved = conn.execute(
        update(imports)
        .where(imports.c.id == import_id, imports.c.state == ImportState.RUNNING)
        .values(state=ImportState.DONE, has_report=has_report, finished_at=now, **counts)
    )
    return moved.rowcount == 1


def fail(conn: Connection, import_id: str, error: str, now: datetime, states: Sequence[ImportState] = _UNENDED) -> bool:
    """End an import that imported nothing, with the one-line reason, if it is in one of ``states``."""
    moved = conn.execute(
        update(imports)
        .where(imports.c.id == import_id, imports.c.state.in_(states))
        .values(state=ImportState.FAILED, error=error, finished_at=now, rows=0, accepted=0, rejected=0)
    )
    return moved.rowcount == 1


def lost(conn: Connection, sent_before: datetime, stale_before: datetime, limit: int) -> Sequence[AnyRow]:
    """Imports whose task was lost: queued, or running with a heartbeat older than ``stale_before``,
    with no task sent since ``sent_before``; oldest first, with their campaign's name."""
    query = (
        select(imports.c.id, imports.c.state, imports.c.sends, campaigns.c.name.label("campaign"))
        .join(campaigns, campaigns.c.id == imports.c.campaign_id)
        # The state spelled out as the partial index ix_imports_unended has it, for the planner.
        .where(imports.c.state.in_(_UNENDED), _lost(sent_before, stale_before))
        .order_by(imports.c.created_at, imports.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def _still_lost(import_id: str, sends: int, sent_before: datetime, stale_before: datetime) -> ColumnElement[bool]:
    # ``sends`` as read: a scheduler that led a moment ago and read the same row moves it once.
    return and_(imports.c.id == import_id, imports.c.sends == sends, _lost(sent_before, stale_before))


def resend(
    conn: Connection, import_id: str, sends: int, sent_before: datetime, stale_before: datetime, now: datetime
) -> bool:
    """Count one more send of a lost import's task, unless it started, ended or was sent meanwhile."""
    moved = conn.execute(
        update(imports)
        .where(_still_lost(import_id, sends, sent_before, stale_before))
        .values(sends=sends + 1, sent_at=now)
    )
    return moved.rowcount == 1


def fail_lost(
    conn: Connection,
    import_id: str,
    sends: int,
    sent_before: datetime,
    stale_before: datetime,
    error: str,
    now: datetime,
) -> bool:
    """End a lost import that was sent again as often as allowed, unless it started or ended meanwhile."""
    moved = conn.execute(
        update(imports)
        .where(_still_lost(import_id, sends, sent_before, stale_before))
        .values(state=ImportState.FAILED, error=error, finished_at=now, rows=0, accepted=0, rejected=0)
    )
    return moved.rowcount == 1
