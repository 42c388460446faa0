"""Raw provider events: stored as received, deduplicated per account by the provider's key.

An event belongs to the account whose webhook URL (and secret) it came in on: it is
deduplicated within that account and matched only to that account's calls, so a
secret of one account can neither settle nor pre-empt another account's calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from outdial.models import Attempt, ProviderEvent
from outdial.store import AnyRow, table

events = table(ProviderEvent)
attempts = table(Attempt)

# What a webhook that could not be read is stored as (kept a while so a person can look).
UNPARSED = "unparsed"


# pg_advisory_xact_lock(namespace, hashtext(provider:call id)): one call's id and its events, one at a time.
_CALL_LOCK_NAMESPACE = 0x0CA11


_LOCK_CALL = text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))")


def lock_call(conn: Connection, provider: str, call_id: str) -> None:
    """Serialise, until the transaction ends, everything that applies events to one call: webhooks,
    the worker's replay of what waited for the call id, and the scheduler's sweep. Take it before
    any row the application writes, so the order is always lock, then rows. The worker's answer
    does not take it (see ``Dispatcher._record``). SQLite has one writer at a time already."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_CALL, {"ns": _CALL_LOCK_NAMESPACE, "key": f"{provider}:{call_id}"})


def store_event(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert one event; None if the account already has an event with the same (provider, event_key)."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        dialect_insert(events)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["provider", "account", "event_key"])
        .returning(events.c.id)
    )
    found = conn.execute(stmt).scalar()
    return int(found) if found is not None else None


def mark_event(conn: Connection, event_id: int, applied: str, job_id: int | None = None) -> None:
    conn.execute(update(events).where(events.c.id == event_id).values(applied=applied, job_id=job_id))


# Built once, bound per call (``_provider``, ``_account``, ``_call_id``): every accepted dispatch runs it
# (on PostgreSQL within ``jobs.accept_answer``'s statement).
UNMATCHED = (
    select(events)
    .where(
        events.c.provider == bindparam("_provider"),
        events.c.account == bindparam("_account"),
        events.c.provider_call_id == bindparam("_call_id"),
        events.c.applied == "unmatched",
    )
    .order_by(events.c.id)
)


def unmatched_events(conn: Connection, provider: str, account: str, call_id: str) -> Sequence[AnyRow]:
    """The account's events that arrived before the call id they name was recorded."""
    return conn.execute(UNMATCHED, {"_provider": provider, "_account": account, "_call_id": call_id}).all()


def reported(conn: Connection, provider_call_ids: Sequence[str]) -> dict[str, list[AnyRow]]:
    """What providers said about these calls, oldest first: every raw status kept, applied or not."""
    found: dict[str, list[AnyRow]] = {}
    if not provider_call_ids:
        return found
    rows = conn.execute(
        select(events.c.provider_call_id, events.c.raw_status, events.c.outcome, events.c.applied, events.c.received_at)
        .where(events.c.provider_call_id.in_(list(provider_call_ids)))
        .order_by(events.c.id)
    ).all()
    for row in rows:
        found.setdefault(row.provider_call_id, []).append(row)
    return found


def still_unmatched(conn: Connection, event_id: int) -> bool:
    applied = conn.execute(select(events.c.applied).where(events.c.id == event_id)).scalar()
    return bool(applied == "unmatched")


def matchable_unmatched(conn: Connection, limit: int) -> Sequence[AnyRow]:
    """Unmatched events whose call id has since been recorded on an attempt of the same account
    (a webhook that raced the worker's own record of the call)."""
    query = (
        select(events)
        .where(
            events.c.applied == "unmatched",
            select(attempts.c.id)
            .where(
                attempts.c.provider == events.c.provider,
                attempts.c.account == events.c.account,
                or_(
                    attempts.c.provider_call_id == events.c.provider_call_id,
                    attempts.c.provider_ref == events.c.provider_call_id,
                ),
            )
            .exists(),
        )
        .order_by(events.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def expire_events(conn: Connection, received_before: datetime) -> int:
    """Delete events that never matched a call, or could not be read, received before the cut-off."""
    result = conn.execute(
        delete(events).where(
            (events.c.applied == "unmatched") | (events.c.raw_status == UNPARSED),
            events.c.received_at < received_before,
        )
    )
    return int(result.rowcount or 0)
