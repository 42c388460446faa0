"""Property-based: schemathesis sends generated requests for every operation of the OpenAPI schema.

Valid and invalid bodies, parameters and headers, with a valid API key: no
answer may be a 5xx. Bad input must come back as a 4xx (a 422 naming the
field), never as a crash. Runs on SQLite against the ASGI app in this
process; a cap on examples per operation keeps it under two minutes.

The schema is loaded when the module is collected (schemathesis's
``from_fixture`` does not work with this pytest), from an app whose database
is only created and seeded when the test starts.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.providers.accounts import load_accounts
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store.db import make_engine, upgrade
from tests.conftest import ACCOUNTS_TOML, REDIS_URL, delete_redis_keys, redis_keys_of

pytestmark = pytest.mark.slow

HOME = Path(tempfile.mkdtemp(prefix="outdial-schemathesis-"))
(HOME / "accounts.toml").write_text(ACCOUNTS_TOML)
SETTINGS = Settings(
    data_dir=HOME / "var",
    accounts_file=HOME / "accounts.toml",
    queue=f"outdial.test.{uuid.uuid4().hex[:8]}",
    redis_url=REDIS_URL,  # /readyz answers 503 without a Redis: its meaning, not a crash
)
DB_URL = f"sqlite:///{HOME / 'outdial.db'}"
ENGINE = make_engine(DB_URL)  # connects on first use, after the fixture below made the tables
APP = create_app(SETTINGS, ENGINE, load_accounts(SETTINGS.accounts_file))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

KEY: dict[str, str] = {}
# Read-only and upload operations aim at a campaign that exists (a random name is only ever a 404);
# pause, resume and cancel keep their generated names, so that campaign stays active.
EXISTING = "spring"
AIMED = {"GET /campaigns/{name}", "GET /campaigns/{name}/status", "POST /campaigns/{name}/leads"}


@pytest.fixture(scope="module", autouse=True)
def _database() -> Iterator[None]:
    upgrade(DB_URL)
    now = datetime.now(UTC)
    campaign_id = create_campaign(ENGINE, SETTINGS, EXISTING, "ck", TimingFields(timezone="Asia/Kolkata"), now)
    with ENGINE.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    assert campaign is not None
    add_leads(ENGINE, SETTINGS, campaign, [LeadIn("+919876543210", {"name": "Asha"})], now)
    KEY["value"] = create_key(ENGINE, "schemathesis", now)
    yield
    ENGINE.dispose()
    shutil.rmtree(HOME, ignore_errors=True)
    # Uploads queued imports that no worker here takes.
    delete_redis_keys(REDIS_URL, redis_keys_of(SETTINGS))


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTDIAL_TEST_CK_KEY", "sim-key")
    monkeypatch.setenv("OUTDIAL_TEST_WEBHOOK_SECRET", "test-webhook-secret")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case: schemathesis.Case) -> None:
    if f"{case.method} {case.path}" in AIMED:
        case.path_parameters = {**(case.path_parameters or {}), "name": EXISTING}
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY['value']}"}, checks=[not_a_server_error])
