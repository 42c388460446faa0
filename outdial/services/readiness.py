"""Whether outdial can work: the checks ``/readyz`` and ``outdial doctor`` share.

Each check returns a :class:`Check` that says what is wrong and what to do
about it, in words an operator can act on; none raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from sqlalchemy import Engine, text

from outdial.store.db import migrations_current


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_database(engine: Engine) -> Check:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check(
            "database",
            False,
            f"{engine.url.render_as_string(hide_password=True)}: {_first_line(exc)}",
            "start the database, or set OUTDIAL_DATABASE_URL to one that is reachable",
        )
    return Check("database", True, engine.url.render_as_string(hide_password=True))


def check_migrations(engine: Engine) -> Check:
    try:
        current = migrations_current(engine)
    except Exception as exc:
        return Check("migrations", False, _first_line(exc), "outdial db upgrade")
    if not current:
        return Check("migrations", False, "the schema is behind the newest migration", "outdial db upgrade")
    return Check("migrations", True, "at the newest migration")


def _redact(url: str) -> str:
    """A Redis URL without its password, fit for a log or a page."""
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname or ''}:{parsed.port or 6379}{parsed.path}"


def check_redis(url: str | None) -> Check:
    if not url:
        return Check(
            "redis",
            False,
            "OUTDIAL_REDIS_URL is not set (only `outdial up` starts the embedded Redis)",
            "export OUTDIAL_REDIS_URL=redis://HOST:6379/0",
        )
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return Check("redis", False, f"{_redact(url)}: {_first_line(exc)}", "start Redis, or fix OUTDIAL_REDIS_URL")
    return Check("redis", True, _redact(url))
