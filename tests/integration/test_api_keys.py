"""API keys: made by ``outdial keys``, stored hashed, required on every route but the open ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from outdial.api.app import create_app
from outdial.api.auth import ApiKeyError, create_key, key_hash, revoke_key
from outdial.cli import app as cli
from outdial.models import ApiKey
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings
from outdial.store import table

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def client(settings: Settings, engine: Engine) -> TestClient:
    return TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))


def test_every_route_but_the_open_ones_needs_a_key(settings: Settings, engine: Engine) -> None:
    app = create_app(settings, engine, load_accounts(settings.accounts_file))
    http = TestClient(app)
    open_prefixes = ("/healthz", "/readyz", "/metrics", "/ui", "/webhooks", "/docs", "/openapi.json", "/redoc")
    # Every route in the schema: the campaign page (open) is left out of it.
    guarded = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if not path.startswith(open_prefixes)
    ]
    assert ("POST", "/calls") in guarded and ("POST", "/campaigns") in guarded  # the list is not vacuous
    for method, path in guarded:
        url = path.replace("{job_id}", "1").replace("{name}", "c")
        response = http.request(method, url)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    assert http.get("/healthz").status_code == 200


def test_bearer_and_x_api_key_are_accepted_and_a_wrong_key_is_not(settings: Settings, engine: Engine) -> None:
    key = create_key(engine, "crm", NOW)
    http = client(settings, engine)
    assert http.get("/campaigns", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert http.get("/campaigns", headers={"X-API-Key": key}).status_code == 200
    assert http.get("/campaigns", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
    assert http.get("/campaigns", headers={"Authorization": f"Basic {key}"}).status_code == 401
    assert http.get("/campaigns", headers={"X-API-Key": ""}).status_code == 401


def test_keys_are_stored_only_as_sha256_and_revoking_refuses_them(settings: Settings, engine: Engine) -> None:
    key = create_key(engine, "crm", NOW)
    other = create_key(engine, "ops", NOW)
    with engine.connect() as conn:
        stored = {r.name: r.key_hash for r in conn.execute(select(table(ApiKey)))}
    assert stored == {"crm": key_hash(key), "ops": key_hash(other)}
    assert key not in stored.values() and len(key) > 40
    revoke_key(engine, "crm", NOW)
    http = client(settings, engine)
    assert http.get("/campaigns", headers={"X-API-Key": key}).status_code == 401
    assert http.get("/campaigns", headers={"X-API-Key": other}).status_code == 200
    with pytest.raises(ApiKeyError, match="revoked already"):
        revoke_key(engine, "crm", NOW)
    with pytest.raises(ApiKeyError, match="exists already"):
        create_key(engine, "crm", NOW)


def test_keys_cli_create_prints_the_key_once_list_shows_no_secret_revoke_works(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "crm-sync"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert key.startswith("odk_")
    http = client(settings, engine)
    assert http.get("/campaigns", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    listed = runner.invoke(cli, ["keys", "list", "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["revoked_at"]) for r in rows] == [("crm-sync", None)]
    assert key not in listed.stdout and key_hash(key) not in listed.stdout

    assert runner.invoke(cli, ["keys", "revoke", "crm-sync"]).exit_code == 0
    assert http.get("/campaigns", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    again = runner.invoke(cli, ["keys", "revoke", "crm-sync"])
    assert again.exit_code == 2 and "revoked already" in again.stderr
