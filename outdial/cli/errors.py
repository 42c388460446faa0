"""The CLI's one error-translation point: a refusal, a bad setting or a service that does not
answer is one line on stderr naming the fix, never a traceback.

Only libraries the failed command already imported are looked at (``sys.modules``), so
this costs ``outdial --help`` nothing.
"""

from __future__ import annotations

import sys

from outdial.errors import ConfigError, InputError, OutdialError

REDIS_FIX = "start Redis, or set OUTDIAL_REDIS_URL to one that answers (unset, `outdial up` starts its own)"
DATABASE_FIX = "start the database, or set OUTDIAL_DATABASE_URL to one that is reachable (unset: the embedded SQLite)"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _is(exc: BaseException, module: str, *names: str) -> bool:
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, tuple(getattr(loaded, n) for n in names))


def explain(exc: BaseException) -> tuple[str, int] | None:
    """The line to print and the exit status for ``exc``; None for a bug (its traceback is wanted)."""
    if isinstance(exc, OutdialError):
        return str(exc), 2 if isinstance(exc, InputError | ConfigError) else 1
    if _is(exc, "sqlalchemy.exc", "OperationalError", "InterfaceError"):
        return f"cannot reach the database ({_first_line(getattr(exc, 'orig', None) or exc)}): {DATABASE_FIX}", 1
    if _is(exc, "redis.exceptions", "ConnectionError", "TimeoutError"):
        return f"cannot reach Redis ({_first_line(exc)}): {REDIS_FIX}", 1
    if _is(exc, "kombu.exceptions", "OperationalError"):
        return f"cannot reach the Celery broker ({_first_line(exc)}): {REDIS_FIX}", 1
    return None


def redis_answers(url: str | None, role: str) -> None:
    """Fail fast, naming the setting, when the Redis a part needs does not answer."""
    from outdial.services.readiness import check_redis

    check = check_redis(url)
    if not check.ok:
        raise ConfigError(f"{role} cannot reach Redis ({check.detail.rstrip('.')}): {REDIS_FIX}")
