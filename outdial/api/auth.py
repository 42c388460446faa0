"""API keys: made once and shown once, stored as hashes, checked in constant time.

A key is 32 random bytes (URL-safe text) behind a readable prefix. Such a key
cannot be guessed, so a fast hash (SHA-256) is enough to store it: a slow
password hash only matters for keys people choose. Every route of the API
but health, metrics, the campaign page and provider webhooks (which carry
their own provider authentication) takes it as ``Authorization: Bearer KEY``
or ``X-API-Key: KEY``.

A key has scopes (``outdial keys create NAME --scope ...``): a level, ``read``
(GET routes), ``write`` (also every POST but the admin ones) or ``admin`` (also
resuming and cancelling campaigns), and optionally ``account:NAME`` and
``campaign:NAME`` entries that narrow it to those accounts' and campaigns' jobs.
A key made without scopes, and every key made before scopes existed, is
``admin`` on everything. Out-of-scope things look absent (404), so a narrow key
learns nothing about what it may not see; an out-of-scope level or account in a
request is a 403 that says which scope is missing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from outdial.api.deps import Context, context
from outdial.errors import InputError
from outdial.store import api_keys as key_store

KEY_PREFIX = "odk_"

_bearer = HTTPBearer(auto_error=False, description="An outdial API key: `Authorization: Bearer odk_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An outdial API key.")


class ApiKeyError(InputError):
    """A key could not be made or revoked; the message says why."""


class Level(IntEnum):
    """What a key may do, each level including the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True)
class Principal:
    """The calling key: its name, its level, and the accounts and campaigns it is narrowed to (None: all)."""

    name: str
    level: Level = Level.ADMIN
    accounts: frozenset[str] | None = None
    campaigns: frozenset[str] | None = None

    @classmethod
    def from_scopes(cls, name: str, scopes: list[str] | None) -> Principal:
        """A stored key's principal; no scopes (a key made before scopes existed) is full access."""
        if not scopes:
            return cls(name)
        levels = [Level[s.upper()] for s in scopes if s.upper() in Level.__members__]
        accounts = frozenset(s.split(":", 1)[1] for s in scopes if s.startswith("account:"))
        campaigns = frozenset(s.split(":", 1)[1] for s in scopes if s.startswith("campaign:"))
        return cls(name, max(levels, default=Level.WRITE), accounts or None, campaigns or None)

    def may(self, account: str | None, campaign: str | None) -> bool:
        """Whether the key reaches a job or campaign of ``account`` in ``campaign`` (None: no campaign)."""
        if self.accounts is not None and account not in self.accounts:
            return False
        return self.campaigns is None or campaign in self.campaigns

    def require(self, level: Level) -> None:
        if self.level < level:
            raise HTTPException(403, f"the key {self.name!r} lacks the {level.name.lower()!r} scope")


def parse_scopes(scopes: list[str]) -> list[str]:
    """Check ``--scope`` values; the list to store (empty: full access)."""
    out: list[str] = []
    for raw in scopes:
        scope = raw.strip()
        kind, _, value = scope.partition(":")
        if scope.upper() in Level.__members__:
            out.append(scope.lower())
        elif kind in ("account", "campaign") and value.strip():
            out.append(f"{kind}:{value.strip()}")
        else:
            raise ApiKeyError(f"unknown scope {raw!r}: use read, write, admin, account:NAME or campaign:NAME")
    narrowed = any(":" in s for s in out)
    if narrowed and "admin" in out:
        raise ApiKeyError(
            "an admin key reaches every account and campaign: leave out admin, or the account:/campaign: scopes"
        )
    return sorted(set(out))


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, name: str, now: datetime, scopes: list[str] | None = None) -> str:
    """Store a new key under ``name`` and return it: the only time it is ever seen.

    ``scopes`` as ``--scope`` takes them (:func:`parse_scopes`); none is full access."""
    if not name.strip() or len(name) > 100:
        raise ApiKeyError("a key's name is 1 to 100 characters")
    stored = parse_scopes(scopes or [])
    key = new_key()
    try:
        with engine.begin() as conn:
            if key_store.by_name(conn, name) is not None:
                raise ApiKeyError(f"a key named {name!r} exists already (revoked keys keep their name)")
            key_store.create(conn, name, key_hash(key), now, stored or None)
    except IntegrityError:
        raise ApiKeyError(f"a key named {name!r} exists already") from None
    return key


def revoke_key(engine: Engine, name: str, now: datetime) -> None:
    with engine.begin() as conn:
        if not key_store.revoke(conn, name, now):
            found = key_store.by_name(conn, name)
            raise ApiKeyError(f"no key named {name!r}" if found is None else f"the key {name!r} is revoked already")


def key_owner(engine: Engine, presented: str) -> Principal | None:
    """The active key ``presented`` is, or None.

    Compared against every active hash without stopping at a match, each with
    ``hmac.compare_digest``, so the time taken says nothing about the keys.
    """
    wanted = key_hash(presented)
    with engine.connect() as conn:
        active = key_store.active_hashes(conn)
    owner = None
    for name, stored, scopes in active:
        if hmac.compare_digest(stored, wanted):
            owner = Principal.from_scopes(name, scopes)
    return owner


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer KEY``, else ``X-API-Key``."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return x_api_key or None


UNAUTHORIZED = HTTPException(
    401,
    "a valid API key is needed: Authorization: Bearer KEY, or X-API-Key: KEY (outdial keys create NAME)",
    headers={"WWW-Authenticate": "Bearer"},
)
# Where the body-limit layer leaves the key it checked before the body was read.
PRINCIPAL_STATE = "principal"


async def require_api_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    header_key: str | None = Security(_header),
    ctx: Context = Depends(context),
) -> Principal:
    """The calling key; 401 without a valid, unrevoked key, 403 when a write needs a level it lacks.

    GET reads; any other method writes. Admin-only routes add :func:`require_admin`."""
    owner: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    if owner is None:
        owner = await run_in_threadpool(_owner, ctx, bearer, header_key)
    if owner is None:
        raise UNAUTHORIZED
    owner.require(Level.READ if request.method in ("GET", "HEAD") else Level.WRITE)
    return owner


async def require_admin(owner: Principal = Depends(require_api_key)) -> Principal:
    owner.require(Level.ADMIN)
    return owner


def optional_key(
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    header_key: str | None = Security(_header),
    ctx: Context = Depends(context),
) -> Principal | None:
    """The calling key on an open route (``/readyz``), or None: an open route never refuses.

    A database that cannot be asked cannot vouch for the key either: None."""
    try:
        return _owner(ctx, bearer, header_key)
    except SQLAlchemyError:
        return None


def _owner(ctx: Context, bearer: HTTPAuthorizationCredentials | None, header_key: str | None) -> Principal | None:
    presented = bearer.credentials if bearer is not None and bearer.scheme.lower() == "bearer" else header_key
    return key_owner(ctx.engine, presented) if presented else None
