"""Circuit breakers, and the recent attempt counts they are judged by."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from outdial.models import Attempt, Breaker, Job
from outdial.store import AnyRow, table
from outdial.vocab import NOT_ACCEPTED, Outcome

breakers = table(Breaker)
attempts = table(Attempt)
jobs = table(Job)

# A request the provider did not take as a call, or a call that failed.
FAILED = (attempts.c.result.in_(NOT_ACCEPTED)) | (attempts.c.outcome == Outcome.FAILED)


def recent_counts(conn: Connection, scope: str, since: datetime) -> dict[str, tuple[int, int]]:
    """(attempts, failures) per account or per campaign id, among attempts answered since ``since``."""
    key = attempts.c.account if scope == "account" else func.cast(jobs.c.campaign_id, attempts.c.account.type)
    query = (
        select(key, func.count(), func.sum(case((FAILED, 1), else_=0)))
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .where(attempts.c.requested_at >= since, attempts.c.result.is_not(None))
        .group_by(key)
    )
    if scope == "campaign":
        query = query.where(jobs.c.campaign_id.is_not(None))
    return {str(k): (int(n), int(f or 0)) for k, n, f in conn.execute(query)}


def counts_since(conn: Connection, scope: str, name: str, since: datetime) -> tuple[int, int]:
    return recent_counts(conn, scope, since).get(name, (0, 0))


def all_breakers(conn: Connection) -> Sequence[AnyRow]:
    return conn.execute(select(breakers).order_by(breakers.c.scope, breakers.c.name)).all()


def reset_points(conn: Connection) -> dict[tuple[str, str], datetime]:
    query = select(breakers.c.scope, breakers.c.name, breakers.c.reset_at).where(breakers.c.reset_at.is_not(None))
    return {(str(s), str(n)): r for s, n, r in conn.execute(query)}


def trip(conn: Connection, scope: str, name: str, reason: str, now: datetime) -> bool:
    """Open a breaker; False if it was open already."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(breakers).values(scope=scope, name=name, open=True, reason=reason, opened_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "name"],
        set_={"open": True, "reason": reason, "opened_at": now},
        where=breakers.c.open.is_(False),
    )
    # RETURNING, not rowcount: drivers differ on what an upsert's rowcount says.
    return conn.execute(stmt.returning(breakers.c.name)).first() is not None


def reset(conn: Connection, scope: str, name: str, now: datetime) -> None:
    """Close a breaker by hand; attempts before now no longer count."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(breakers).values(scope=scope, name=name, open=False, reset_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "name"], set_={"open": False, "reason": None, "reset_at": now}
    )
    conn.execute(stmt)
