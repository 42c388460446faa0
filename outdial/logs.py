"""Logging: JSON lines in production, readable lines in a terminal.

``OUTDIAL_LOG_FORMAT`` is ``json``, ``console``, or ``auto`` (console when
stderr is a terminal, JSON otherwise, e.g. under Docker). Ids bound with
:func:`bind` (the Celery dispatch task binds its job id) are added to every
line logged in that context, Celery's own lines included.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from outdial.settings import get_settings

# The ids worth carrying on every line of the dispatch path.
CONTEXT_FIELDS = (
    "job_id",
    "campaign_id",
    "account",
    "attempt",
    "attempt_id",
    "task_id",
    "verdict",
    "http_status",
    "reason",
)

DISPATCH_TASK_NAME = "outdial.dispatch_call"  # outdial.worker.app.DISPATCH_TASK, without importing Celery here

# Attributes every LogRecord has: an ``extra`` key with one of these names makes
# ``Logger.makeRecord`` raise KeyError, which fails the caller (a Celery task, a request).
RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call: a name a LogRecord already uses gets a ``_`` suffix instead of raising.

    Every ``extra=`` in outdial goes through here (tests/unit/test_logs.py checks the source).
    """
    return {f"{name}_" if name in RESERVED else name: value for name, value in values.items()}


_bound: ContextVar[dict[str, Any] | None] = ContextVar("outdial_log_context", default=None)


def bind(**fields: Any) -> None:
    """Add ``fields`` to every line logged from here on in this context (a task, a request)."""
    _bound.set({**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}})


def unbind_all() -> None:
    _bound.set(None)


class ContextFilter(logging.Filter):
    """Puts the bound ids on each record that does not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_bound.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "job_id"):
            job_id = _job_id_of_celery_line(record)
            if job_id is not None:
                record.job_id = job_id
        return True


_SHOWN_JOB = re.compile(r"job=(\d+)\b")


def _job_id_of_celery_line(record: logging.LogRecord) -> int | None:
    """Celery's "Task ... received" line is logged before any task context: read the id off its args."""
    data = getattr(record, "data", None)
    if not isinstance(data, dict) or data.get("name") != DISPATCH_TASK_NAME:
        return None
    text = str(data.get("args"))
    # The scheduler's readable argsrepr starts "job=N " (outdial.services.shown); other senders' is [N].
    if shown := _SHOWN_JOB.match(text):
        return int(shown.group(1))
    try:
        args = ast.literal_eval(text)
        return int(args[0])
    except (ValueError, SyntaxError, TypeError, IndexError):
        return None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if hasattr(record, n))
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{clock} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def setup_logging() -> None:
    settings = get_settings()
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # httpx says "HTTP Request: POST ..." at INFO for every provider request: the dispatch's own
    # "dialing"/"dialed" lines say it with the job's ids. Its warnings, and DEBUG, still show.
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)


def install_celery_logging() -> None:
    """Make Celery workers log through :func:`setup_logging`, with the job id bound in each dispatch task.

    Connected receivers of ``setup_logging`` stop Celery from configuring logging itself.
    """
    from celery import signals

    def configure(**_: Any) -> None:
        setup_logging()

    def task_started(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
        unbind_all()
        if getattr(task, "name", None) == DISPATCH_TASK_NAME and args:
            bind(job_id=args[0], task_id=task_id)

    def task_ended(**_: Any) -> None:
        unbind_all()

    signals.setup_logging.connect(configure, weak=False)
    signals.task_prerun.connect(task_started, weak=False)
    signals.task_postrun.connect(task_ended, weak=False)
