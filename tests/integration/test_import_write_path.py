"""PostgreSQL: an import writes without the foreign-key checks when its role may, with them otherwise.

``lead_import.pg_begin`` turns the triggers off (``SET LOCAL session_replication_role =
replica``) for a superuser or a role granted ``SET ON PARAMETER session_replication_role``.
Either way the rows written are the same, none is an orphan, and the setting ends with
the import's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError

from outdial.models import Job
from outdial.services.campaigns import create_campaign
from outdial.services.intake import csv_import
from outdial.services.intake.csv_import import ImportSummary, import_csv
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import dnc as dnc_store
from outdial.store import lead_import, table
from outdial.store.db import make_engine
from outdial.store.lead_import import WritePath

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
job_table = table(Job)
lead_table = campaign_store.leads

# Several batches (CHUNK_ROWS is made small below): repeats across batches, a number on the
# do-not-call list, a bad row, and lead timing columns (more than one admission).
LEADS_CSV = (
    "phone,name,timezone,priority\n"
    "+12125551234,a,,\n"
    "+919876543210,blocked,,\n"
    "+447911123456,b,Europe/London,5\n"
    "not a number,bad,,\n"
    "+14155550123,c,,\n"
    "+1 212 555 1234,repeat of a,,\n"
    "+61291234567,d,Australia/Sydney,\n"
    "+12125550001,e,,9\n"
    "+447911123456,repeat of b,,\n"
    "+12125550002,f,,\n"
)


@dataclass(frozen=True)
class PlainRole:
    name: str
    engine: Engine  # connects as the role, to the test's database


@pytest.fixture
def plain_role(engine: Engine) -> Iterator[PlainRole]:
    """A role that is not a superuser, with what an import needs on the test's tables; dropped after."""
    with engine.connect() as conn:
        if not conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar_one():
            pytest.skip("making a role and granting it a parameter takes a superuser")
    name = f"outdial_plain_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {name}"))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"))
        conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}"))
    plain = make_engine(engine.url.set(username=name).render_as_string(hide_password=False))
    try:
        yield PlainRole(name, plain)
    finally:
        plain.dispose()
        with engine.begin() as conn:
            # Revokes its grants here and on shared objects (the parameter) too.
            conn.execute(text(f"DROP OWNED BY {name}"))
            conn.execute(text(f"DROP ROLE {name}"))


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 3)


def make_campaign(engine: Engine, settings: Settings, name: str) -> int:
    fields = TimingFields.model_validate({"timezone": "America/New_York", "priority": 2})
    return create_campaign(engine, settings, name, "ck", fields, NOW)


def import_file(engine: Engine, settings: Settings, tmp_path: Path, name: str) -> ImportSummary:
    path = tmp_path / f"{name}.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    return import_csv(engine, settings, name, path, now=NOW)


def written(engine: Engine, campaign_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A campaign's leads and jobs, every column but the ids (a job names its lead by phone)."""
    with engine.connect() as conn:
        leads = conn.execute(
            select(lead_table).where(lead_table.c.campaign_id == campaign_id).order_by(lead_table.c.phone)
        ).mappings()
        lead_rows = [dict(r) for r in leads]
        jobs = conn.execute(
            select(job_table).where(job_table.c.campaign_id == campaign_id).order_by(job_table.c.to_number)
        ).mappings()
        job_rows = [dict(r) for r in jobs]
    phone_of = {r["id"]: r["phone"] for r in lead_rows}
    ids = {"id", "campaign_id", "lead_id"}
    return (
        [{k: v for k, v in r.items() if k not in ids} for r in lead_rows],
        [{**{k: v for k, v in r.items() if k not in ids}, "lead": phone_of[r["lead_id"]]} for r in job_rows],
    )


def orphans(engine: Engine) -> tuple[int, int, int]:
    """Jobs without their lead, jobs without their campaign, leads without their campaign."""
    with engine.connect() as conn:
        return (
            conn.execute(
                text(
                    "SELECT count(*) FROM jobs j LEFT JOIN leads l ON l.id = j.lead_id"
                    " WHERE j.lead_id IS NOT NULL AND l.id IS NULL"
                )
            ).scalar_one(),
            conn.execute(
                text(
                    "SELECT count(*) FROM jobs j LEFT JOIN campaigns c ON c.id = j.campaign_id"
                    " WHERE j.campaign_id IS NOT NULL AND c.id IS NULL"
                )
            ).scalar_one(),
            conn.execute(
                text("SELECT count(*) FROM leads l LEFT JOIN campaigns c ON c.id = l.campaign_id WHERE c.id IS NULL")
            ).scalar_one(),
        )


def counts(summary: ImportSummary) -> tuple[int, int, int, int, int]:
    return (summary.rows, summary.accepted, summary.rejected, summary.duplicates, summary.suppressed)


def test_leads_and_jobs_have_no_trigger_replica_mode_would_skip(engine: Engine) -> None:
    """The unchecked path rests on this: only the foreign keys' own (internal) triggers are there."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
                " WHERE tgrelid IN ('leads'::regclass, 'jobs'::regclass, 'campaigns'::regclass) AND NOT tgisinternal"
            )
        ).all()
        rules = conn.execute(
            text("SELECT tablename, rulename FROM pg_rules WHERE tablename IN ('leads', 'jobs', 'campaigns')")
        ).all()
    assert found == [] and rules == []


def test_both_paths_write_the_same_rows_and_no_orphans(
    engine: Engine, settings: Settings, tmp_path: Path, plain_role: PlainRole
) -> None:
    with engine.begin() as conn:
        dnc_store.add(conn, ["+919876543210"], "test", NOW)
    unchecked_id = make_campaign(engine, settings, "unchecked")
    checked_id = make_campaign(engine, settings, "checked")

    fast = import_file(engine, settings, tmp_path, "unchecked")  # the test's user is a superuser
    slow = import_file(plain_role.engine, settings, tmp_path, "checked")

    assert (fast.write_path, slow.write_path) == (WritePath.UNCHECKED, WritePath.CHECKED)
    assert counts(fast) == counts(slow) == (10, 6, 1, 2, 1)
    fast_rows, slow_rows = written(engine, unchecked_id), written(engine, checked_id)
    assert len(fast_rows[0]) == len(fast_rows[1]) == 6
    assert fast_rows == slow_rows
    assert orphans(engine) == (0, 0, 0)


def test_a_plain_role_takes_the_unchecked_path_once_granted_the_parameter(
    engine: Engine, settings: Settings, tmp_path: Path, plain_role: PlainRole
) -> None:
    make_campaign(engine, settings, "before")
    make_campaign(engine, settings, "after")

    before = import_file(plain_role.engine, settings, tmp_path, "before")
    with engine.begin() as conn:
        conn.execute(text(f"GRANT SET ON PARAMETER session_replication_role TO {plain_role.name}"))
    after = import_file(plain_role.engine, settings, tmp_path, "after")

    assert (before.write_path, after.write_path) == (WritePath.CHECKED, WritePath.UNCHECKED)
    assert counts(before) == counts(after)
    assert orphans(engine) == (0, 0, 0)


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_the_setting_ends_with_the_transaction(engine: Engine, settings: Settings, end: str) -> None:
    campaign_id = make_campaign(engine, settings, "c")
    with engine.connect() as conn:
        transaction = conn.begin()
        assert lead_import.pg_begin(conn, campaign_id) is WritePath.UNCHECKED
        assert conn.execute(text("SHOW session_replication_role")).scalar_one() == "replica"
        transaction.commit() if end == "commit" else transaction.rollback()
        assert conn.execute(text("SHOW session_replication_role")).scalar_one() == "origin"
        conn.rollback()


def test_a_pooled_connection_is_back_to_origin_after_an_import(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    make_campaign(engine, settings, "c")
    # One connection in the pool: the import's writer and the check after it share it.
    single = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    try:
        with single.connect() as conn:
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        summary = import_file(single, settings, tmp_path, "c")
        assert summary.write_path is WritePath.UNCHECKED and summary.accepted == 7  # none on the dnc list here
        with single.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == backend
            assert conn.execute(text("SHOW session_replication_role")).scalar_one() == "origin"
    finally:
        single.dispose()


def test_the_campaign_cannot_be_deleted_under_an_unchecked_import(engine: Engine, settings: Settings) -> None:
    """The row lock the skipped checks would have taken: a delete of the campaign waits for the import."""
    campaign_id = make_campaign(engine, settings, "c")
    with engine.connect() as importing, engine.connect() as other:
        with importing.begin():
            assert lead_import.pg_begin(importing, campaign_id) is WritePath.UNCHECKED
            other.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                other.execute(text("DELETE FROM campaigns WHERE id = :id"), {"id": campaign_id})
            other.rollback()
        with other.begin():  # the import's transaction over, the delete goes through
            assert other.execute(text("DELETE FROM campaigns WHERE id = :id"), {"id": campaign_id}).rowcount == 1
