"""``/healthz``, ``/readyz`` and ``outdial doctor`` against the real databases and Redis, and broken ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from outdial.api.app import create_app
from outdial.cli import app as cli
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings
from outdial.store.db import make_engine

CLOSED_PORT = 18349  # in this suite's range; nothing listens there


def client(settings: Settings, engine: Engine) -> TestClient:
    return TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))


def test_healthz_answers(settings: Settings, engine: Engine) -> None:
    assert client(settings, engine).get("/healthz").json() == {"status": "ok"}


def test_readyz_ok_with_database_redis_and_migrations(settings: Settings, engine: Engine, redis_url: str) -> None:
    settings.redis_url = redis_url
    response = client(settings, engine).get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {name: c["ok"] for name, c in checks.items()} == {"database": True, "redis": True, "migrations": True}


def test_readyz_503_names_redis_when_it_is_down(settings: Settings, engine: Engine) -> None:
    settings.redis_url = f"redis://:hunter2@127.0.0.1:{CLOSED_PORT}/0"
    response = client(settings, engine).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert not body["checks"]["redis"]["ok"] and body["checks"]["database"]["ok"]
    assert "hunter2" not in response.text  # the URL's password is never shown


def test_readyz_503_when_migrations_are_behind(settings: Settings, tmp_path: Path, redis_url: str) -> None:
    settings.redis_url = redis_url
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # reachable, never migrated
    response = client(settings, empty).get("/readyz")
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    # No key can be checked in an unmigrated database: the fix is `outdial doctor`'s to tell.
    assert not migrations["ok"] and "fix" not in migrations
    assert "outdial doctor" in response.json()["details"]


def test_readyz_503_when_the_database_is_unreachable(settings: Settings, redis_url: str) -> None:
    settings.redis_url = redis_url
    down = make_engine(f"postgresql://postgres:s3cret@127.0.0.1:{CLOSED_PORT}/nothing", pool_pre_ping=False)
    response = client(settings, down).get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert not checks["database"]["ok"] and "migrations" not in checks
    assert "s3cret" not in response.text


def doctor(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, db_url: str, redis_url: str, *args: str
) -> tuple[int, str]:
    monkeypatch.setenv("OUTDIAL_ACCOUNTS_FILE", str(settings.accounts_file))
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", db_url)
    monkeypatch.setenv("OUTDIAL_REDIS_URL", redis_url)
    result = CliRunner().invoke(cli, ["doctor", *args])
    return result.exit_code, result.output


def test_doctor_all_good(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, db_url: str, redis_url: str
) -> None:
    code, out = doctor(monkeypatch, settings, db_url, redis_url, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], out
    names = {c["name"] for c in report["checks"]}
    assert {"accounts file", "account ck", "database", "migrations", "redis"} <= names


def test_doctor_names_the_missing_credential_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, db_url: str, redis_url: str
) -> None:
    monkeypatch.delenv("OUTDIAL_TEST_CK_KEY")
    code, out = doctor(monkeypatch, settings, db_url, redis_url)
    assert code == 1
    assert "FAIL  account ck" in out
    assert "export OUTDIAL_TEST_CK_KEY=..." in out
    assert "test-webhook-secret" not in out  # the variable that is set is not echoed


def test_doctor_reports_unknown_provider_broken_file_and_redis(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, db_url: str
) -> None:
    settings.accounts_file.write_text('[accounts.x]\nprovider = "nosuch"\nbase_url = "http://x"\n')
    code, out = doctor(monkeypatch, settings, db_url, f"redis://127.0.0.1:{CLOSED_PORT}/0", "--json")
    report = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    assert not report["account x"]["ok"] and "callkaro" in report["account x"]["fix"]
    assert not report["redis"]["ok"]

    settings.accounts_file.write_text("[accounts.x\n")
    code, out = doctor(monkeypatch, settings, db_url, f"redis://127.0.0.1:{CLOSED_PORT}/0", "--json")
    report = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1 and not report["accounts file"]["ok"]
