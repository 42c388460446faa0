"""The do-not-call list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from outdial.models import DncNumber
from outdial.store import table

dnc = table(DncNumber)


def is_listed(conn: Connection, phone: str) -> bool:
    return bool(conn.execute(select(exists().where(dnc.c.phone == phone))).scalar())


def add(conn: Connection, phones: Iterable[str], source: str | None, now: datetime) -> int:
    """Add numbers (E.164); how many were new."""
    rows = [{"phone": p, "source": source, "added_at": now} for p in dict.fromkeys(phones)]
    if not rows:
        return 0
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(dnc).values(rows).on_conflict_do_nothing(index_elements=["phone"])
    # RETURNING, not rowcount: psycopg reports -1 for a multi-row insert.
    return len(conn.execute(stmt.returning(dnc.c.phone)).all())


def remove(conn: Connection, phones: Iterable[str]) -> int:
    result = conn.execute(delete(dnc).where(dnc.c.phone.in_(list(phones))))
    return int(result.rowcount)


def listed(conn: Connection, phones: Sequence[str]) -> set[str]:
    """Which of ``phones`` are on the list."""
    if not phones:
        return set()
    return {str(r[0]) for r in conn.execute(select(dnc.c.phone).where(dnc.c.phone.in_(list(phones))))}


def all_numbers(conn: Connection) -> list[tuple[str, str | None, datetime]]:
    return [(r.phone, r.source, r.added_at) for r in conn.execute(select(dnc).order_by(dnc.c.phone))]
