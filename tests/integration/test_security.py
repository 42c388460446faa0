"""Issue 14: each attacker's probe reproduced, and each now failing safe."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from outdial.api.app import create_app
from outdial.api.auth import ApiKeyError, create_key
from outdial.cli import app as cli
from outdial.models import ApiKey, ProviderEvent
from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import create_campaign
from outdial.services.dispatch import Dispatcher, Step
from outdial.services.export import neutralise
from outdial.services.intake.csv_import import import_csv
from outdial.services.intake.enqueue import CallBody, enqueue_call
from outdial.services.outcomes import apply_late_matches, record_event
from outdial.services.providers.accounts import load_accounts
from outdial.services.providers.base import CallEvent, Outcome
from outdial.services.timing.spec import TimingFields
from outdial.settings import DEMO_WEBHOOK_SECRET, Profile, Settings
from outdial.store import jobs as job_store
from outdial.store import table
from outdial.worker.intake_tasks import TaskRefused, import_from_kwargs
from tests.integration.conftest import accepted_call

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
URL = "http://callkaro.test/call/outbound"
# Two accounts on one provider, each with its own webhook secret.
TWO_ACCOUNTS = """
[accounts.ck-b]
provider = "callkaro"
base_url = "http://callkaro.test"
credentials = { api_key = "OUTDIAL_TEST_CK_KEY" }
webhook_secret = "OUTDIAL_TEST_WEBHOOK_SECRET_B"
options = { agent_id = "sim-agent" }
"""
BODY = {"to_number": "+12125551234", "account": "ck", "timezone": "America/New_York"}


@pytest.fixture
def two_accounts(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    with settings.accounts_file.open("a") as f:
        f.write(TWO_ACCOUNTS)
    monkeypatch.setenv("OUTDIAL_TEST_WEBHOOK_SECRET_B", "secret-of-b")
    return settings


def api(settings: Settings, engine: Engine) -> TestClient:
    return TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))


def keyed(settings: Settings, engine: Engine, *scopes: str, name: str = "tests") -> TestClient:
    http = api(settings, engine)
    http.headers["Authorization"] = f"Bearer {create_key(engine, name, NOW, list(scopes))}"
    return http


def accepted_job(engine: Engine, settings: Settings, call_id: str, **fields: Any) -> int:
    """A job of account ck whose call ``call_id`` the provider accepted."""
    return accepted_call(engine, settings, NOW, call_id, **fields)


def job_state(engine: Engine, job_id: int) -> str:
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None
    return str(job.state)


def hook(call_id: str, reason: str = "CLIENT_INITIATED", **data: Any) -> bytes:
    return json.dumps({"event": "call_ended", "data": {"callSid": call_id, "hangup_reason": reason, **data}}).encode()


# 1. Webhooks are bound to their account ----------------------------------------------------------


def test_a_webhook_of_another_account_cannot_settle_or_preempt_a_call(engine: Engine, two_accounts: Settings) -> None:
    job_id = accepted_job(engine, two_accounts, "call-77")
    http = api(two_accounts, engine)
    # B's valid secret, A's call id: stored under B, never applied to A's job.
    forged = http.post("/webhooks/ck-b", content=hook("call-77"), headers={"Authorization": "Bearer secret-of-b"})
    assert forged.status_code == 200 and forged.json()["results"] == ["unmatched"]
    apply_late_matches(engine, NOW, two_accounts)
    assert job_state(engine, job_id) == "accepted"
    # ...and it did not take the real event's place as a "duplicate".
    real = http.post("/webhooks/ck", content=hook("call-77"), headers={"Authorization": "Bearer test-webhook-secret"})
    assert real.json()["results"] == ["applied"]
    assert job_state(engine, job_id) == "completed"


def test_unmatched_and_unparsed_events_expire(engine: Engine, settings: Settings) -> None:
    event = CallEvent("nobody", "nobody:call_ended", "CLIENT_INITIATED", Outcome.COMPLETED, NOW)
    assert record_event(engine, "callkaro", "ck", event, "{}", "webhook", NOW, settings) == "unmatched"
    http = api(settings, engine)
    bad = http.post("/webhooks/ck", content=b"{not json", headers={"Authorization": "Bearer test-webhook-secret"})
    assert bad.status_code == 400
    events = table(ProviderEvent)
    with engine.connect() as conn:
        assert len(conn.execute(select(events.c.id)).all()) == 2
    apply_late_matches(engine, NOW + timedelta(seconds=settings.unmatched_event_ttl_s - 60), settings)
    with engine.connect() as conn:
        assert len(conn.execute(select(events.c.id)).all()) == 2  # not yet
    apply_late_matches(engine, datetime.now(UTC) + timedelta(seconds=settings.unmatched_event_ttl_s + 60), settings)
    with engine.connect() as conn:
        assert conn.execute(select(events.c.id)).all() == []


def test_the_demo_secret_is_refused_outside_the_demo_profile(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTDIAL_TEST_WEBHOOK_SECRET", DEMO_WEBHOOK_SECRET)
    auth = {"Authorization": f"Bearer {DEMO_WEBHOOK_SECRET}"}
    production = settings.model_copy(update={"profile": Profile.PRODUCTION})
    assert api(production, engine).post("/webhooks/ck", content=hook("c-1"), headers=auth).status_code == 401
    with engine.connect() as conn:
        assert conn.execute(select(table(ProviderEvent).c.id)).all() == []  # nothing stored
    demo = settings.model_copy(update={"profile": Profile.DEMO})
    assert api(demo, engine).post("/webhooks/ck", content=hook("c-1"), headers=auth).status_code == 200


def test_production_is_the_default_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTDIAL_PROFILE", raising=False)
    assert Settings().profile == Profile.PRODUCTION


# 2. No file access through Celery ---------------------------------------------------------------


def test_import_task_refuses_paths_and_reads_only_the_import_folder(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    create_campaign(engine, settings, "winter", "ck", TimingFields(), NOW)
    with pytest.raises(TaskRefused, match="no longer reads paths"):
        import_from_kwargs(engine, settings, {"campaign": "winter", "path": "/etc/passwd"})
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    with pytest.raises(TaskRefused, match="no longer reads paths"):
        import_from_kwargs(engine, settings, {"campaign": "winter", "csv": "phone\n", "report_path": str(victim)})
    assert victim.read_text() == "precious"
    for escape in ("../victim.txt", "/etc/passwd", ".hidden"):
        with pytest.raises(TaskRefused, match="file"):
            import_from_kwargs(engine, settings, {"campaign": "winter", "file": escape})
    settings.import_dir.mkdir(parents=True)
    (settings.import_dir / "leads.csv").write_text("phone\n+12125551234\n")
    summary = import_from_kwargs(engine, settings, {"campaign": "winter", "file": "leads.csv"})
    assert summary["accepted"] == 1
    summary = import_from_kwargs(engine, settings, {"campaign": "winter", "csv": "phone\n+12125551299\n"})
    assert summary["accepted"] == 1


# 3. Bounded bodies, read only after the key is checked ----------------------------------------


def test_an_unauthenticated_body_is_never_read(engine: Engine, settings: Settings) -> None:
    http = api(settings, engine)
    read: list[int] = []

    def body() -> Any:
        for _ in range(100):
            read.append(1)
            yield b"x" * 65536

    response = http.post("/calls", content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert len(read) <= 1  # at most what the client pushed before the answer


def test_json_and_upload_limits_answer_413_naming_the_limit(engine: Engine, settings: Settings) -> None:
    small = settings.model_copy(update={"max_json_bytes": 4096, "max_upload_bytes": 8192})
    http = keyed(small, engine)
    big = json.dumps({**BODY, "metadata": {"x": "y" * 5000}})
    declared = http.post("/calls", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "4096-byte limit" in declared.json()["detail"]
    assert "OUTDIAL_MAX_JSON_BYTES" in declared.json()["detail"]

    def streamed() -> Any:  # no Content-Length: counted as it arrives
        yield big.encode()

    chunked = http.post("/calls", content=streamed(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    create_campaign(engine, small, "winter", "ck", TimingFields(), NOW)
    csv = b"phone\n" + b"+12125551234\n" * 1000
    upload = http.post("/campaigns/winter/leads", files={"file": ("leads.csv", csv, "text/csv")})
    assert upload.status_code == 413 and "OUTDIAL_MAX_UPLOAD_BYTES" in upload.json()["detail"]
    hooked = http.post("/webhooks/ck", content=b"x" * 5000, headers={"Authorization": "Bearer test-webhook-secret"})
    assert hooked.status_code == 413


def test_stored_webhook_payloads_are_capped(engine: Engine, settings: Settings) -> None:
    capped = settings.model_copy(update={"stored_payload_bytes": 1024})
    body = hook("c-9", note="n" * 5000)
    answer = api(capped, engine).post(
        "/webhooks/ck", content=body, headers={"Authorization": "Bearer test-webhook-secret"}
    )
    assert answer.status_code == 200
    with engine.connect() as conn:
        (payload,) = conn.execute(select(table(ProviderEvent).c.payload)).scalars()
    assert len(payload) < 1200 and payload.endswith("OUTDIAL_STORED_PAYLOAD_BYTES]")


# 4. Bad input never strands a job ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"metadata": {"name": "\\ud800"}}', "metadata"),
        ('{"metadata": {"n": NaN}}', "metadata"),
        ('{"metadata": {"n": Infinity}}', "metadata"),
        ('{"agent_id": "a\\udfff"}', "agent_id"),
        ('{"metadata": {"x": "' + "y" * 20000 + '"}}', "metadata"),
        ('{"metadata": ' + '{"a": ' * 20 + "1" + "}" * 20 + "}", "metadata"),
        ('{"days_of_week": [' + ",".join(["1"] * 5000) + "]}", "days_of_week"),
        ('{"gap_between_retries": [' + ",".join(["5"] * 50) + "]}", "gap_between_retries"),
    ],
)
def test_intake_refuses_unsendable_values_with_422_naming_the_field(
    engine: Engine, settings: Settings, raw: str, field: str
) -> None:
    body = json.dumps(BODY)[:-1] + ", " + raw[1:]
    response = keyed(settings, engine).post("/calls", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert field in [d["field"].split(".")[0] for d in response.json()["detail"]]


def test_deeply_nested_json_is_a_4xx_not_a_500(engine: Engine, settings: Settings) -> None:
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    response = keyed(settings, engine).post("/calls", content=deep, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500


@respx.mock
def test_any_exception_in_dispatch_rejects_the_job_without_its_data(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = enqueue_call(engine, CallBody.model_validate(BODY), NOW, settings).job_id
    Scheduler(engine, settings, lambda _: None).tick(NOW)
    route = respx.post(URL).mock(side_effect=RuntimeError("secret metadata +12125551234"))
    dispatcher = Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client())
    assert dispatcher.dispatch(job_id, NOW).step == Step.REJECTED
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
    assert job is not None and job.state == "rejected"
    assert job.reason.startswith("internal error: RuntimeError")
    assert "+1212" not in job.reason and "secret" not in caplog.text
    # A second delivery finds nothing to do: never dialled again.
    assert str(dispatcher.dispatch(job_id, NOW)) == "skipped:rejected"
    assert route.call_count == 1


# 5. Provider times, cron, export ---------------------------------------------------------------


def test_a_provider_end_time_in_year_8999_is_clamped_and_fast(engine: Engine, settings: Settings) -> None:
    job_id = accepted_job(engine, settings, "call-far", number_of_retries=2, gap_between_retries=30)
    far = datetime(8999, 1, 1, tzinfo=UTC)
    event = CallEvent("call-far", "call-far:call_ended", "USER_UNRESPONSIVE", Outcome.NO_ANSWER, far)
    started = time.monotonic()
    assert record_event(engine, "callkaro", "ck", event, "{}", "webhook", NOW, settings) == "applied"
    assert time.monotonic() - started < 2
    with engine.connect() as conn:
        job = job_store.get_job(conn, job_id)
        (attempt,) = job_store.attempts_of(conn, job_id)
    assert job is not None and job.state == "scheduled"
    assert attempt.ended_at == NOW  # clamped to the time it was received
    assert job.next_due_at - NOW < timedelta(days=2)


def test_a_cron_that_never_fires_is_a_422(engine: Engine, settings: Settings) -> None:
    response = keyed(settings, engine).post("/campaigns", json={"name": "feb", "account": "ck", "cron": "0 0 31 2 *"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "cron"


@pytest.mark.parametrize("value", ["a;=cmd|' /C calc'!A0", "x, +1+1", "n;@SUM(A1)", "k,-2+3", "a; =1"])
def test_export_neutralises_formulas_after_separators(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["+14155550123", "-3", "a;b", "plain, text"])
def test_export_leaves_plain_values_alone(value: str) -> None:
    assert neutralise(value) == value


# 6. Scoped keys, idempotency, /readyz, SQLite imports -----------------------------------------


def test_a_task_reusing_an_idempotency_key_with_another_body_is_refused(engine: Engine, settings: Settings) -> None:
    from outdial.worker.intake_tasks import enqueue_from_kwargs

    accounts = load_accounts(settings.accounts_file)
    first = enqueue_from_kwargs(engine, settings, accounts, {**BODY, "idempotency_key": "k-1"}, NOW)
    again = enqueue_from_kwargs(engine, settings, accounts, {**BODY, "idempotency_key": "k-1"}, NOW)
    assert again == {**first, "created": False}
    with pytest.raises(TaskRefused, match="different request"):
        enqueue_from_kwargs(engine, settings, accounts, {**BODY, "priority": 9, "idempotency_key": "k-1"}, NOW)


def test_scopes_read_write_admin(engine: Engine, settings: Settings) -> None:
    create_campaign(engine, settings, "winter", "ck", TimingFields(), NOW)
    reader = keyed(settings, engine, "read", name="reader")
    assert reader.get("/campaigns").status_code == 200
    refused = reader.post("/calls", json=BODY)
    assert refused.status_code == 403 and "'write'" in refused.json()["detail"]
    writer = keyed(settings, engine, "write", name="writer")
    assert writer.post("/calls", json=BODY).status_code == 201
    assert writer.post("/campaigns/winter/pause").status_code == 200
    assert writer.post("/campaigns/winter/cancel").status_code == 403
    admin = keyed(settings, engine, "admin", name="admin")
    assert admin.post("/campaigns/winter/cancel").status_code == 200


def test_scopes_narrow_a_key_to_its_accounts_and_campaigns(engine: Engine, two_accounts: Settings) -> None:
    create_campaign(engine, two_accounts, "of-a", "ck", TimingFields(), NOW)
    create_campaign(engine, two_accounts, "of-b", "ck-b", TimingFields(), NOW)
    job_a = enqueue_call(engine, CallBody.model_validate(BODY), NOW, two_accounts, "key-a").job_id
    only_b = keyed(two_accounts, engine, "write", "account:ck-b", name="b-only")
    assert [c["name"] for c in only_b.get("/campaigns").json()] == ["of-b"]
    assert only_b.get("/campaigns/of-a").status_code == 404
    assert only_b.get(f"/jobs/{job_a}").status_code == 404
    assert only_b.get("/jobs", params={"idempotency_key": "key-a"}).json() == []
    assert only_b.post("/calls", json=BODY).status_code == 403
    assert only_b.post("/calls", json={**BODY, "account": "ck-b"}).status_code == 201
    assert only_b.post("/campaigns/of-a/pause").status_code == 404
    campaign_key = keyed(two_accounts, engine, "campaign:of-a", name="a-campaign")
    assert [c["name"] for c in campaign_key.get("/campaigns").json()] == ["of-a"]
    assert campaign_key.post("/calls", json=BODY).status_code == 403  # single calls are no campaign's


def test_keys_made_before_scopes_keep_full_access(engine: Engine, settings: Settings) -> None:
    http = keyed(settings, engine, name="old")
    with engine.begin() as conn:
        conn.execute(table(ApiKey).update().values(scopes=None))
    create_campaign(engine, settings, "winter", "ck", TimingFields(), NOW)
    assert http.post("/campaigns/winter/cancel").status_code == 200


def test_bad_scopes_are_refused_and_the_cli_takes_scope(
    engine: Engine, settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ApiKeyError, match="unknown scope"):
        create_key(engine, "k1", NOW, ["root"])
    with pytest.raises(ApiKeyError, match="admin"):
        create_key(engine, "k2", NOW, ["admin", "account:ck"])
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", db_url)
    made = CliRunner().invoke(cli, ["keys", "create", "crm", "--scope", "read", "--scope", "account:ck"])
    assert made.exit_code == 0, made.output
    listed = CliRunner().invoke(cli, ["keys", "list", "--json"])
    assert json.loads(listed.stdout)[0]["scopes"] == ["account:ck", "read"]


def test_readyz_details_only_with_a_key(engine: Engine, settings: Settings, redis_url: str) -> None:
    settings.redis_url = redis_url
    anonymous = api(settings, engine).get("/readyz").json()
    assert anonymous["status"] == "ok" and "redis" in anonymous["checks"]
    assert "127.0.0.1" not in json.dumps(anonymous) and "detail" not in anonymous["checks"]["redis"]
    with_key = keyed(settings, engine).get("/readyz").json()
    assert "127.0.0.1" in with_key["checks"]["redis"]["detail"]


def test_sqlite_imports_commit_in_chunks(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Another connection can write while an import runs: the import does not hold the lock throughout."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single writer")
    from outdial.services.intake import csv_import, import_writer

    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 1000)
    create_campaign(engine, settings, "winter", "ck", TimingFields(), NOW)
    commits: list[int] = []
    real_write = import_writer.ImportWriter._write

    def write_and_check(self: Any, conn: Any, batch: Any, postgres: bool) -> None:
        real_write(self, conn, batch, postgres)
        commits.append(len(batch.rows))

    monkeypatch.setattr(import_writer.ImportWriter, "_write", write_and_check)
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n" + "".join(f"+1212555{n:04d}\n" for n in range(6000)))
    seen_between: list[int] = []
    real_put = import_writer.ImportWriter.put

    def put_and_probe(self: Any, batch: Any) -> None:
        real_put(self, batch)
        if commits:  # a batch was written: its rows must be visible (committed) to others
            with engine.connect() as conn:
                seen_between.append(len(job_store.jobs_in(conn, range(1, 7000))))

    monkeypatch.setattr(import_writer.ImportWriter, "put", put_and_probe)
    summary = import_csv(engine, settings, "winter", leads)
    assert summary.accepted == 6000 and len(commits) > 1
    assert any(n > 0 for n in seen_between)
