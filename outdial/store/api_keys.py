"""API keys: only their hashes are stored; a revoked key stays listed with when it was revoked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from outdial.models import ApiKey
from outdial.store import AnyRow, table

api_keys = table(ApiKey)


def create(conn: Connection, name: str, key_hash: str, now: datetime, scopes: list[str] | None = None) -> int:
    values = dict(name=name, key_hash=key_hash, created_at=now, scopes=scopes)
    query = insert(api_keys).values(**values).returning(api_keys.c.id)
    return int(conn.execute(query).scalar_one())


def by_name(conn: Connection, name: str) -> AnyRow | None:
    return conn.execute(select(api_keys).where(api_keys.c.name == name)).first()


def all_keys(conn: Connection) -> Sequence[AnyRow]:
    """Every key's name and dates (never its hash), oldest first."""
    query = select(api_keys.c.name, api_keys.c.scopes, api_keys.c.created_at, api_keys.c.revoked_at).order_by(
        api_keys.c.id
    )
    return conn.execute(query).all()


def active_hashes(conn: Connection) -> list[tuple[str, str, list[Any] | None]]:
    """``(name, key_hash, scopes)`` of every key not revoked."""
    query = select(api_keys.c.name, api_keys.c.key_hash, api_keys.c.scopes).where(api_keys.c.revoked_at.is_(None))
    return [(str(name), str(key_hash), scopes) for name, key_hash, scopes in conn.execute(query)]


def revoke(conn: Connection, name: str, now: datetime) -> bool:
    """Revoke a key; False if there is no such key or it was revoked already."""
    result = conn.execute(
        update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount == 1
