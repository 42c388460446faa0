"""Uploaded lead lists whose task was lost, or whose worker died, are found by the leading
scheduler's sweep: sent again, then failed with a reason, never left waiting forever.

The sweep is driven directly (``Scheduler.tick`` with a chosen now) on both databases; the
import it sends again is run by a real worker on the real Redis.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from outdial.models import Job, Lead
from outdial.scheduler.loop import Scheduler
from outdial.scheduler.process import celery_import_sender
from outdial.services.campaigns import create_campaign
from outdial.services.intake import csv_import, uploads
from outdial.services.requests import ImportOptions
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import AnyRow, table
from outdial.store import imports as import_store
from tests.integration.conftest import wait_for

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def queued_upload(engine: Engine, settings: Settings, rows: int = 3, at: datetime = NOW) -> uploads.Upload:
    """A campaign ``c`` and an upload of ``rows`` distinct numbers, queued at ``at`` (its task never sent)."""
    create_campaign(engine, settings, "c", "ck", TimingFields(callee_hours=None), at)
    text = "phone\n" + "".join(f"+1212{5_000_000 + i}\n" for i in range(rows))
    return uploads.accept_upload(
        engine, settings, "c", io.BytesIO(text.encode()), ImportOptions(), file_name="l.csv", uploaded_by="t", now=at
    )


def the_import(engine: Engine, import_id: str) -> AnyRow:
    with engine.connect() as conn:
        found = import_store.by_id(conn, import_id)
    assert found is not None
    return found


def count(engine: Engine, model: type[Lead] | type[Job]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table(model))).scalar_one())


def test_a_lost_queued_import_is_sent_again_by_the_sweep_and_imported(
    worker: Callable[..., None], engine: Engine, settings: Settings, redis_url: str
) -> None:
    # The scheduler sends to the broker and queue of its settings: the test's, which the worker reads.
    settings = settings.model_copy(update={"redis_url": redis_url})
    upload = queued_upload(engine, settings)
    scheduler = Scheduler(engine, settings, lambda _: None, send_import=celery_import_sender(settings))
    lease = timedelta(seconds=settings.import_queued_lease_s)

    assert scheduler.tick(NOW + lease - SECOND).imports_resent == 0  # its task may still be on its way
    assert the_import(engine, upload.import_id).state == "queued"
    report = scheduler.tick(NOW + lease + SECOND)
    assert (report.imports_resent, report.imports_lost) == (1, 0)

    wait_for(lambda: the_import(engine, upload.import_id).state == "done")
    done = the_import(engine, upload.import_id)
    assert (done.rows, done.accepted, done.error, done.sends) == (3, 3, None, 1)
    assert done.sent_at == NOW + lease + SECOND
    assert count(engine, Lead) == 3
    assert not uploads.upload_path(settings, upload.import_id).exists()
    assert scheduler.tick(NOW + 3 * lease).imports_resent == 0  # ended: never sent again


def test_an_import_lost_every_time_ends_failed_with_the_reason_and_its_file_removed(
    engine: Engine, settings: Settings
) -> None:
    upload = queued_upload(engine, settings)
    sent: list[uploads.Upload] = []
    scheduler = Scheduler(engine, settings, lambda _: None, send_import=sent.append)
    lease = timedelta(seconds=settings.import_queued_lease_s)

    at = NOW
    for sends in range(1, settings.import_max_resends + 1):
        at += lease + SECOND
        assert scheduler.tick(at).imports_resent == 1
        assert scheduler.tick(at + lease - SECOND).imports_resent == 0  # no second send within the lease
        found = the_import(engine, upload.import_id)
        assert (found.state, found.sends, found.sent_at) == ("queued", sends, at)
    assert sent == [upload] * settings.import_max_resends

    report = scheduler.tick(at + lease + SECOND)
    assert (report.imports_resent, report.imports_lost) == (0, 1)
    failed = the_import(engine, upload.import_id)
    lost = settings.import_max_resends + 1  # the API's send, then each of the sweep's
    assert failed.state == "failed" and failed.error == f"the import task was lost {lost} times; upload the file again"
    assert failed.finished_at == at + lease + SECOND
    assert not uploads.upload_path(settings, upload.import_id).exists()
    assert not any((settings.data_dir / "uploads").glob("*"))
    report = scheduler.tick(at + 10 * lease)
    assert (report.imports_resent, report.imports_lost) == (0, 0) and len(sent) == settings.import_max_resends


def test_a_running_import_is_sent_again_only_once_its_heartbeat_is_stale(engine: Engine, settings: Settings) -> None:
    # A send lease shorter than the stale age (the defaults are equal), so the ticks tell them apart.
    settings = settings.model_copy(update={"import_stale_s": 300.0, "import_queued_lease_s": 120.0})
    upload = queued_upload(engine, settings)
    sent: list[uploads.Upload] = []
    scheduler = Scheduler(engine, settings, lambda _: None, send_import=sent.append)
    stale = timedelta(seconds=settings.import_stale_s)
    lease = timedelta(seconds=settings.import_queued_lease_s)
    assert stale > lease  # else the ticks below would not tell the two ages apart
    with engine.begin() as conn:
        assert import_store.start(conn, upload.import_id, NOW, NOW - stale)

    # Running with a fresh heartbeat: its worker is alive, though the API's send is long past.
    assert scheduler.tick(NOW + stale - SECOND).imports_resent == 0
    # Silent for longer than the stale age: the worker died, and the task goes out again, once.
    assert scheduler.tick(NOW + stale + SECOND).imports_resent == 1
    assert scheduler.tick(NOW + stale + 2 * SECOND).imports_resent == 0
    assert sent == [upload]
    # The task sent again takes it over; its heartbeats keep the sweep away.
    taken_at = NOW + stale + 3 * SECOND
    with engine.begin() as conn:
        assert import_store.start(conn, upload.import_id, taken_at, taken_at - stale)
        import_store.record_progress(conn, upload.import_id, 10_000, 10_000, 0, taken_at + stale - SECOND)
    assert scheduler.tick(taken_at + stale + lease).imports_resent == 0
    assert scheduler.tick(taken_at + 2 * stale).imports_resent == 1


class WorkerDied(BaseException):
    """The worker process ended mid-import (no ``except Exception`` catches it)."""


def test_a_run_taken_over_after_a_partial_run_imports_no_lead_twice(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks: the first run reports progress (and writes batches, committed one by one on
    # SQLite) several times before it dies.
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 10)
    upload = queued_upload(engine, settings, rows=100, at=datetime.now(UTC))
    record = import_store.record_progress
    reports = 0

    def dies_on_the_fifth_report(*args: Any) -> None:
        nonlocal reports
        reports += 1
        if reports == 5:
            # By now the writer has taken three batches, so has written the first two.
            raise WorkerDied
        record(*args)

    monkeypatch.setattr(import_store, "record_progress", dies_on_the_fifth_report)
    with pytest.raises(WorkerDied):
        uploads.run_upload(engine, settings, upload.import_id)
    monkeypatch.setattr(import_store, "record_progress", record)
    left = count(engine, Lead)
    if engine.dialect.name == "sqlite":
        assert 20 <= left < 100  # the batches committed before it died stay
    else:
        assert left == 0  # one transaction, rolled back with the connection
    assert the_import(engine, upload.import_id).state == "running"

    # Its task delivered again at once: the heartbeat is fresh, so the dead run is not yet known
    # dead, and nothing runs beside what might still be running.
    again = uploads.run_upload(engine, settings, upload.import_id)
    assert again is not None and again.state == "running" and count(engine, Lead) == left

    # Once the heartbeat is stale, a run takes it over and imports the rest: no number twice.
    quick = settings.model_copy(update={"import_stale_s": 0.05})
    time.sleep(0.1)
    done = uploads.run_upload(engine, quick, upload.import_id)
    assert done is not None and done.state == "done", done
    assert (done.rows, done.accepted, done.duplicates) == (100, 100 - left, left)
    assert count(engine, Lead) == 100 and count(engine, Job) == 100
    leads, jobs = table(Lead), table(Job)
    with engine.connect() as conn:
        per_phone = conn.execute(select(func.count()).select_from(leads).group_by(leads.c.phone)).scalars().all()
        per_lead = conn.execute(select(func.count()).select_from(jobs).group_by(jobs.c.lead_id)).scalars().all()
    assert len(per_phone) == 100 and set(per_phone) == {1}
    assert len(per_lead) == 100 and set(per_lead) == {1}
    assert not uploads.upload_path(settings, upload.import_id).exists()
