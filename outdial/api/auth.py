"""API keys: made once and shown once, stored as hashes, checked in constant time.

A key is 32 random bytes (URL-safe text) behind a readable prefix. Such a key
cannot be guessed, so a fast hash (SHA-256) is enough to store it: a slow
password hash only matters for keys people choose. Every route of the API
but health, metrics, the campaign page and provider webhooks (which carry
their own provider authentication) takes it as ``Authorization: Bearer KEY``
or ``X-API-Key: KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from outdial.api.deps import Context, context
from outdial.errors import InputError
from outdial.store import api_keys as key_store

KEY_PREFIX = "odk_"

_bearer = HTTPBearer(auto_error=False, description="An outdial API key: `Authorization: Bearer odk_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An outdial API key.")


class ApiKeyError(InputError):
    """A key could not be made or revoked; the message says why."""


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, name: str, now: datetime) -> str:
    """Store a new key under ``name`` and return it: the only time it is ever seen."""
    if not name.strip() or len(name) > 100:
        raise ApiKeyError("a key's name is 1 to 100 characters")
    key = new_key()
    try:
        with engine.begin() as conn:
            if key_store.by_name(conn, name) is not None:
                raise ApiKeyError(f"a key named {name!r} exists already (revoked keys keep their name)")
            key_store.create(conn, name, key_hash(key), now)
    except IntegrityError:
        raise ApiKeyError(f"a key named {name!r} exists already") from None
    return key


def revoke_key(engine: Engine, name: str, now: datetime) -> None:
    with engine.begin() as conn:
        if not key_store.revoke(conn, name, now):
            found = key_store.by_name(conn, name)
            raise ApiKeyError(f"no key named {name!r}" if found is None else f"the key {name!r} is revoked already")


def key_owner(engine: Engine, presented: str) -> str | None:
    """The name of the active key ``presented`` is, or None.

    Compared against every active hash without stopping at a match, each with
    ``hmac.compare_digest``, so the time taken says nothing about the keys.
    """
    wanted = key_hash(presented)
    with engine.connect() as conn:
        active = key_store.active_hashes(conn)
    owner = None
    for name, stored in active:
        if hmac.compare_digest(stored, wanted):
            owner = name
    return owner


def require_api_key(
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    header_key: str | None = Security(_header),
    ctx: Context = Depends(context),
) -> str:
    """The calling key's name; 401 without a valid, unrevoked key."""
    presented = bearer.credentials if bearer is not None and bearer.scheme.lower() == "bearer" else header_key
    owner = key_owner(ctx.engine, presented) if presented else None
    if owner is None:
        raise HTTPException(
            401,
            "a valid API key is needed: Authorization: Bearer KEY, or X-API-Key: KEY (outdial keys create NAME)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return owner
