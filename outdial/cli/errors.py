"""The CLI's one error-translation point: a refusal, a bad setting or a service that does not
answer is one line on stderr naming the fix, never a traceback.

Only libraries the failed command already imported are looked at (``sys.modules``), so
this costs ``outdial --help`` nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

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
    if _is(exc, "pydantic", "ValidationError") and getattr(exc, "title", None) == "Settings":
        return "; ".join(_setting_problem(error) for error in exc.errors()), 2  # type: ignore[attr-defined]
    if _is(exc, "sqlalchemy.exc", "OperationalError", "InterfaceError"):
        return f"cannot reach the database ({_first_line(getattr(exc, 'orig', None) or exc)}): {DATABASE_FIX}", 1
    if _is(exc, "redis.exceptions", "ConnectionError", "TimeoutError"):
        return f"cannot reach Redis ({_first_line(exc)}): {REDIS_FIX}", 1
    if _is(exc, "kombu.exceptions", "OperationalError"):
        return f"cannot reach the Celery broker ({_first_line(exc)}): {REDIS_FIX}", 1
    return None


def _setting_problem(error: Mapping[str, Any]) -> str:
    """``OUTDIAL_CALLEE_HOURS: 'bad' is not HH:MM-HH:MM, or off``: the variable, what it held, the fix."""
    from outdial.settings import SETTING_FORMS

    field = "_".join(str(part) for part in error.get("loc", ()))
    given = error.get("input")
    if error.get("type") == "string_pattern_mismatch" and field in SETTING_FORMS:
        return f"OUTDIAL_{field.upper()}: {given!r} is not {SETTING_FORMS[field]}"
    return f"OUTDIAL_{field.upper()}: {error.get('msg')} (got {given!r})"


def redis_answers(url: str | None, role: str) -> None:
    """Fail fast, naming the setting, when the Redis a part needs does not answer."""
    from outdial.services.readiness import check_redis

    check = check_redis(url)
    if not check.ok:
        raise ConfigError(f"{role} cannot reach Redis ({check.detail.rstrip('.')}): {REDIS_FIX}")
