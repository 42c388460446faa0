"""Shared fixtures: a migrated database on SQLite *and* PostgreSQL, the real Redis, test settings.

``engine`` is parametrised, so every test that takes it runs on both
backends. PostgreSQL gets a database of its own per test session (parallel
runs on one server do not meet); each test starts from empty tables.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from outdial.models import Base
from outdial.settings import Profile, Settings
from outdial.store.db import make_engine, upgrade

PG_ADMIN_URL = os.environ.get("OUTDIAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OUTDIAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI") == "true"
TESTS_DIR = Path(__file__).resolve().parent


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message)  # CI must run against the real services, never skip them
    pytest.skip(message)


@contextmanager
def scratch_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (PostgreSQL away: skipped,
    or failed in CI)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with scratch_pg_database("outdial_test") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'outdial.db'}"
    upgrade(url)
    return url


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def _engines() -> dict[str, Engine]:
    return {}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated, empty database, on each backend in turn."""
    url: str = request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_url")
    return url


@pytest.fixture
def engine(db_url: str, _engines: dict[str, Engine]) -> Engine:
    if db_url not in _engines:
        _engines[db_url] = make_engine(db_url)
    eng = _engines[db_url]
    _empty(eng)
    return eng


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


ACCOUNTS_TOML = """
[accounts.ck]
provider = "callkaro"
base_url = "http://callkaro.test"
credentials = { api_key = "OUTDIAL_TEST_CK_KEY" }
webhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET"
options = { agent_id = "sim-agent" }
"""


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for a test: its own data dir, a test accounts file, secrets only in the environment.

    The demo profile: tests play against the simulator and its public webhook secret.
    """
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS_TOML)
    monkeypatch.setenv("OUTDIAL_TEST_CK_KEY", "sim-key")
    monkeypatch.setenv("OUTDIAL_TEST_WEBHOOK_SECRET", "test-webhook-secret")
    tag = uuid.uuid4().hex[:12]  # this test's names on the shared Redis (see _no_redis_litter)
    return Settings(
        data_dir=tmp_path / "var",
        accounts_file=accounts,
        queue=f"outdial.test.{tag}",
        pacing_prefix=f"outdial:test:{tag}",
        transport_backoff_base_s=0.01,
        transport_backoff_cap_s=0.05,
        profile=Profile.DEMO,
    )


@pytest.fixture(autouse=True)
def _environ_restored() -> Iterator[None]:
    """Every test leaves the process environment as it found it: ``Stack.start`` writes its
    children's settings (database, Redis, PROMETHEUS_MULTIPROC_DIR) to ``os.environ``, and a later
    test must not scrape another test's metrics directory or reach another test's stack."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Tests that set OUTDIAL_* variables get settings read anew, and leave none cached behind."""
    from outdial.settings import reset_settings

    reset_settings()
    yield
    reset_settings()


@pytest.fixture(autouse=True)
def _logging_errors_fail(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests log at INFO (``log_level`` in pyproject.toml); a line any handler fails to emit fails the test.

    A bad ``extra=`` key raises in the caller at INFO already; this catches the rest (a
    formatter that raises, arguments that do not fit the message), from any thread.
    """
    errors: list[str] = []

    def handle_error(_handler: logging.Handler, record: logging.LogRecord) -> None:
        errors.append(f"{record.name}: {record.msg!r} % {record.args!r}")

    monkeypatch.setattr(logging, "raiseExceptions", True)
    monkeypatch.setattr(logging.Handler, "handleError", handle_error)
    yield
    assert not errors, f"logging failed: {errors}"


def redis_keys_of(settings: Settings) -> list[str]:
    """Patterns of every key a test's settings can make on the shared Redis: its queue's and its pacing's."""
    return [f"{settings.queue}", f"_kombu.binding*.{settings.queue}", f"{settings.pacing_prefix}:*"]


def delete_redis_keys(url: str, patterns: list[str]) -> list[str]:
    """Delete the keys matching ``patterns``; the names of those that had no TTL (litter)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
    litter: list[str] = []
    try:
        for pattern in patterns:
            for key in client.scan_iter(pattern, count=1000):
                if client.ttl(key) == -1:
                    litter.append(key.decode())
                client.delete(key)
    except redis.RedisError:
        pass  # no Redis here: nothing can have been left in it
    finally:
        client.close()
    return litter


@pytest.fixture(autouse=True)
def _no_redis_litter(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used the shared Redis leaves none of its keys without a TTL behind.

    The names come from the test's ``settings`` (queue, pacing prefix); fixtures that make
    keys delete them. What is left anyway is deleted here, and fails the test.
    """
    if not {"settings", "redis_url"} <= set(request.fixturenames):
        yield
        return
    settings: Settings = request.getfixturevalue("settings")
    yield
    litter = delete_redis_keys(REDIS_URL, redis_keys_of(settings))
    assert not litter, f"keys left without a TTL on the shared Redis: {litter}"
