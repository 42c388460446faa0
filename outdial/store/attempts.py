"""Queries over the attempts table that the pacing needs when Redis lost its state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from outdial.models import Attempt
from outdial.store import table

attempts = table(Attempt)


def recent_requests_by_account(
    conn: Connection, requested_since: datetime, answered_since: datetime
) -> dict[str, tuple[int, int]]:
    """Per account: (requests sent since ``requested_since`` still without an answer,
    requests answered since ``answered_since``). Both may still count in a one-second send window."""
    found: dict[str, tuple[int, int]] = {}
    in_flight = (
        select(attempts.c.account, func.count())
        .where(attempts.c.result.is_(None), attempts.c.requested_at >= requested_since)
        .group_by(attempts.c.account)
    )
    for account, n in conn.execute(in_flight):
        found[str(account)] = (int(n), 0)
    answered = (
        select(attempts.c.account, func.count())
        .where(attempts.c.responded_at >= answered_since)
        .group_by(attempts.c.account)
    )
    for account, n in conn.execute(answered):
        found[str(account)] = (found.get(str(account), (0, 0))[0], int(n))
    return found
