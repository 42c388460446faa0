"""Bulk lead import: a batch of validated leads becomes leads and their jobs.

Batch rows are ``(source_row, copies, phone, variables_json, admission_id)``:
``copies`` is how often the number occurred in the batch (the batch keeps
its first occurrence). Admissions (first due time and the merged timing,
shared by many leads) are registered once and referred to by id.

Counting, the same on both backends: a row whose number is on the
do-not-call list is *suppressed* (every copy); otherwise the first row of a
number new to the campaign is *accepted*, and the others are duplicates
(derived by the caller: rows - accepted - suppressed).

PostgreSQL: the batch is COPYed into a temporary table, then one statement
inserts the leads (``ON CONFLICT DO NOTHING`` against the campaign's
numbers) and, from what that returned, their jobs. SQLite: executemany.

PostgreSQL's foreign-key checks (three per lead) are about half the backend's work on
this write. A role allowed to set ``session_replication_role`` (a superuser, or one
granted ``SET ON PARAMETER session_replication_role``) writes without them; any other
role writes with them. :func:`pg_begin` says which.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Text, bindparam, insert, text, type_coerce

from outdial.models import Job
from outdial.store import AnyRow, table
from outdial.store import campaigns as campaign_store
from outdial.store import dnc as dnc_store

jobs = table(Job)
leads = campaign_store.leads

BatchRow = tuple[int, int, str, str, int]

# pg_advisory_xact_lock(namespace, campaign id): one import per campaign at a time.
_IMPORT_LOCK_NAMESPACE = 0x0D1A1


@dataclass(frozen=True)
class AdmissionRow:
    id: int
    lead_timing_json: str
    job_timing_json: str
    state: str
    priority: int
    next_due_at: datetime | None
    window_end: datetime | None
    reason: str | None


@dataclass(frozen=True)
class BatchResult:
    accepted: int
    suppressed: int


class WritePath(StrEnum):
    """How an import's PostgreSQL transaction writes: with or without the foreign-key triggers."""

    CHECKED = "checked"
    UNCHECKED = "unchecked"


# PostgreSQL ------------------------------------------------------------------------------

_PG_SETUP = (
    """CREATE TEMPORARY TABLE import_rows (
        source_row integer PRIMARY KEY, copies integer NOT NULL, phone varchar(20) NOT NULL,
        variables json NOT NULL, admission integer NOT NULL) ON COMMIT DROP""",
    """CREATE TEMPORARY TABLE import_admissions (
        id integer PRIMARY KEY, lead_timing json NOT NULL, job_timing json NOT NULL,
        state varchar(20) NOT NULL, priority integer NOT NULL, next_due_at timestamptz,
        window_end timestamptz, reason text) ON COMMIT DROP""",
)

_PG_BATCH = text(
    """
WITH new_leads AS (
    INSERT INTO leads (campaign_id, phone, variables, timing, source_row, created_at)
    SELECT :campaign_id, r.phone, r.variables, a.lead_timing, r.source_row, :now
    FROM import_rows r JOIN import_admissions a ON a.id = r.admission
    WHERE NOT EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone = r.phone)
    ON CONFLICT (campaign_id, phone) DO NOTHING
    RETURNING id, source_row
), new_jobs AS (
    INSERT INTO jobs (campaign_id, lead_id, round, account, to_number, variables, options, timing, retry_on,
                      state, priority, next_due_at, window_end, state_changed_at, attempts_used,
                      transport_retries, reason, created_at)
    SELECT :campaign_id, n.id, :round, :account, r.phone, r.variables, '{}', a.job_timing, CAST(:retry_on AS json),
           a.state, a.priority, a.next_due_at, a.window_end, :now, 0, 0, a.reason, :now
    FROM new_leads n
    JOIN import_rows r ON r.source_row = n.source_row
    JOIN import_admissions a ON a.id = r.admission
    RETURNING 1
)
SELECT
    (SELECT count(*) FROM new_jobs) AS accepted,
    (SELECT coalesce(sum(r.copies), 0) FROM import_rows r
     WHERE EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone = r.phone)) AS suppressed
"""
)


def pg_begin(conn: Connection, campaign_id: int) -> WritePath:
    """Temporary tables for this transaction, the campaign's import lock, and the write path it takes."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :id)"), {"ns": _IMPORT_LOCK_NAMESPACE, "id": campaign_id})
    path = WritePath.CHECKED  # a campaign deleted since it was read: the checks refuse its leads, as ever
    if _lock_campaign_key(conn, campaign_id):
        path = _skip_foreign_key_triggers(conn)
    for statement in _PG_SETUP:
        conn.execute(text(statement))
    return path


def _lock_campaign_key(conn: Connection, campaign_id: int) -> bool:
    """Hold the campaign row as the leads' and jobs' foreign-key checks would; False if it is gone."""
    found = conn.execute(text("SELECT 1 FROM campaigns WHERE id = :id FOR KEY SHARE"), {"id": campaign_id})
    return found.first() is not None


def _skip_foreign_key_triggers(conn: Connection) -> WritePath:
    """Turn the foreign-key triggers off for the rest of this transaction, if the role may.

    Why it is safe: the only rows written with the triggers off are ``_PG_BATCH``'s.
    Their campaign row is held ``FOR KEY SHARE`` until commit (see ``_lock_campaign_key``),
    so it cannot be deleted or change its id meanwhile, and every job points at the lead
    the same statement just inserted. That is all the three checks (leads -> campaigns,
    jobs -> campaigns, jobs -> leads) would ensure. The transaction's other writes are to
    its temporary tables and ``reopen``'s update of the campaign's state, which leaves the
    key alone. The schema has no other trigger on these tables for replica mode to skip
    (tests/integration/test_import_write_path.py checks). ``SET LOCAL`` ends with the
    transaction, committed or not.
    """
    if not _may_set_replication_role(conn):
        return WritePath.CHECKED  # asked, not tried: a refused SET aborts the transaction and logs an ERROR
    conn.execute(text("SET LOCAL session_replication_role = replica"))
    return WritePath.UNCHECKED


def _may_set_replication_role(conn: Connection) -> bool:
    if conn.execute(text("SELECT current_setting('is_superuser') = 'on'")).scalar_one():
        return True
    if int(conn.execute(text("SELECT current_setting('server_version_num')")).scalar_one()) < 150000:
        return False  # ``GRANT SET ON PARAMETER`` and its check came with PostgreSQL 15
    granted = conn.execute(text("SELECT has_parameter_privilege('session_replication_role', 'SET')"))
    return bool(granted.scalar_one())


def pg_add_admissions(conn: Connection, rows: Sequence[AdmissionRow]) -> None:
    if rows:
        conn.execute(
            text(
                "INSERT INTO import_admissions VALUES "
                "(:id, CAST(:lead_timing AS json), CAST(:job_timing AS json), :state, :priority,"
                " :next_due_at, :window_end, :reason)"
            ),
            [
                {
                    "id": r.id,
                    "lead_timing": r.lead_timing_json,
                    "job_timing": r.job_timing_json,
                    "state": r.state,
                    "priority": r.priority,
                    "next_due_at": r.next_due_at,
                    "window_end": r.window_end,
                    "reason": r.reason,
                }
                for r in rows
            ],
        )


def _copy_escape(value: str) -> str:
    # COPY's text format: backslash escapes. JSON text never holds a raw tab or line
    # break (json escapes them), so doubling backslashes is all it needs.
    return value.replace("\\", "\\\\")


def pg_write_batch(conn: Connection, campaign: AnyRow, rows: Sequence[BatchRow], now: datetime) -> BatchResult:
    conn.execute(text("TRUNCATE import_rows"))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy("COPY import_rows (source_row, copies, phone, variables, admission) FROM STDIN") as copy:
        copy.write(
            "".join(
                f"{row}\t{copies}\t{phone}\t{_copy_escape(variables)}\t{admission}\n"
                for row, copies, phone, variables, admission in rows
            )
        )
    result = conn.execute(
        _PG_BATCH,
        {
            "campaign_id": campaign.id,
            "round": campaign.round,
            "account": campaign.account,
            "retry_on": json.dumps(list(campaign.retry_on)),
            "now": now,
        },
    ).one()
    return BatchResult(int(result.accepted), int(result.suppressed))


# SQLite ----------------------------------------------------------------------------------

_SQLITE_IN_LIMIT = 500  # numbers per IN (...) list


def sqlite_write_batch(
    conn: Connection,
    campaign: AnyRow,
    rows: Sequence[BatchRow],
    admissions: dict[int, AdmissionRow],
    now: datetime,
) -> BatchResult:
    phones = [r[2] for r in rows]
    existing: set[str] = set()
    blocked: set[str] = set()
    for start in range(0, len(phones), _SQLITE_IN_LIMIT):
        part = phones[start : start + _SQLITE_IN_LIMIT]
        existing |= campaign_store.existing_phones(conn, campaign.id, part)
        blocked |= dnc_store.listed(conn, part)
    suppressed = sum(r[1] for r in rows if r[2] in blocked)
    fresh = [r for r in rows if r[2] not in blocked and r[2] not in existing]
    if not fresh:
        return BatchResult(0, suppressed)
    # The JSON columns get JSON text as it is: it was encoded once per row already.
    lead_insert = (
        insert(leads)
        .values(variables=type_coerce(bindparam("v"), Text), timing=type_coerce(bindparam("t"), Text))
        .returning(leads.c.id, sort_by_parameter_order=True)
    )
    lead_ids = conn.execute(
        lead_insert,
        [
            {
                "campaign_id": campaign.id,
                "phone": phone,
                "v": variables,
                "t": admissions[admission].lead_timing_json,
                "source_row": row,
                "created_at": now,
            }
            for row, _copies, phone, variables, admission in fresh
        ],
    ).scalars()
    job_insert = insert(jobs).values(
        variables=type_coerce(bindparam("v"), Text), timing=type_coerce(bindparam("t"), Text)
    )
    job_rows: list[dict[str, Any]] = []
    for lead_id, (_row, _copies, phone, variables, admission) in zip(lead_ids, fresh, strict=True):
        a = admissions[admission]
        job_rows.append(
            {
                "campaign_id": campaign.id,
                "lead_id": lead_id,
                "round": campaign.round,
                "account": campaign.account,
                "to_number": phone,
                "v": variables,
                "options": {},
                "t": a.job_timing_json,
                "retry_on": list(campaign.retry_on),
                "state": a.state,
                "priority": a.priority,
                "next_due_at": a.next_due_at,
                "window_end": a.window_end,
                "state_changed_at": now,
                "attempts_used": 0,
                "transport_retries": 0,
                "reason": a.reason,
                "created_at": now,
            }
        )
    conn.execute(job_insert, job_rows)
    return BatchResult(len(fresh), suppressed)
