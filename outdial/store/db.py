"""Engines, and the schema's migrations (``outdial db upgrade``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

import outdial.store.migrations
from outdial.errors import ConfigError
from outdial.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(outdial.store.migrations.__file__).resolve().parent


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, the driver outdial installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


URL_FIX = "set it to postgresql://USER@HOST:5432/DB or sqlite:////PATH/outdial.db, or unset it for the embedded SQLite"


def redacted(url: str) -> str:
    """A database URL without its password, fit for a message."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; a URL that cannot name a database is a :class:`ConfigError` saying how to fix it."""
    try:
        return _make_engine(normalise_url(url), **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"OUTDIAL_DATABASE_URL {redacted(url)!r} cannot be used ({reason}): {URL_FIX}") from None


def _make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Several processes (API, scheduler, workers) share the file: WAL lets readers
            # go on while one writes, and foreign keys are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock at BEGIN, so two writers queue instead of deadlocking on upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        engine.dialect._sqlite_disable_pysqlite_begin = True  # type: ignore[attr-defined]
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        # At most 15 connections per process, all kept once opened (they open lazily, so a
        # single-threaded process holds one). With "5 + 10 overflow", a threads-pool worker
        # busier than 5 threads closed and reopened a connection on almost every checkout
        # (measured with py-spy under bench perf: a new PostgreSQL backend per dispatch).
        kwargs.setdefault("pool_size", 15)
        kwargs.setdefault("max_overflow", 0)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def transactions_block_writers(engine: Engine) -> bool:
    """Whether an open transaction holds off every other writer (SQLite's ``BEGIN IMMEDIATE`` takes the
    database's one write lock): then nothing that may wait, or stall, runs inside a transaction."""
    return engine.dialect.name == "sqlite"


def get_engine() -> Engine:
    return engine_for(get_settings().resolved_database_url())


# Alembic is imported only where migrations are read (0.3 s saved for every other command).
def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None) -> None:
    from alembic import command

    command.upgrade(alembic_config(url or get_settings().resolved_database_url()), "head")


def migrations_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head
