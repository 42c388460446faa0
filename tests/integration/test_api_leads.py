"""CSV lead lists uploaded through the API: accepted at once (202), imported by a real worker.

The import is the same as ``outdial import``; the worker is Celery's embedded
test worker on the real Redis (tests/integration/conftest.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.models import ImportState
from outdial.services.intake import uploads
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import imports as import_store
from tests.integration.conftest import wait_for

LEADS = (
    "\ufeffName;Mobile;city\r\n"  # UTF-8 with BOM, semicolons, a phone column by a common name
    "Asha;+91 98765 43210;Pune\r\n"
    "Ravi;09876543211;Mumbai\r\n"  # national format, needs the default region
    "Nobody;12;Nowhere\r\n"  # not a number
    "Asha again;+919876543210;Pune\r\n"  # a duplicate of row 1
)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STALE = timedelta(minutes=5)  # start() is given the moment before which a heartbeat is stale


def client(settings: Settings, engine: Engine, key: str) -> TestClient:
    http = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    http.headers["X-API-Key"] = key
    return http


@pytest.fixture
def http(settings: Settings, engine: Engine, redis_url: str) -> TestClient:
    # The API sends imports to the broker of its own settings: the test's Redis and queue.
    settings = settings.model_copy(update={"redis_url": redis_url})
    http = client(settings, engine, create_key(engine, "tests", datetime.now(UTC)))
    assert http.post("/campaigns", json={"name": "diwali", "account": "ck"}).status_code == 201
    return http


def upload(http: TestClient, content: str | bytes, campaign: str = "diwali", **params: str) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return http.post(f"/campaigns/{campaign}/leads", params=params, files={"file": ("leads.csv", data, "text/csv")})


def ended(http: TestClient, location: str) -> dict[str, Any]:
    """The import at ``location`` once the worker has ended it."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(http.get(location).json())
        return seen["state"] in (ImportState.DONE, ImportState.FAILED)

    wait_for(done)
    return seen


def test_upload_is_accepted_then_imported_by_a_worker(
    worker: Callable[..., None], http: TestClient, engine: Engine, settings: Settings
) -> None:
    answer = upload(http, LEADS, default_region="IN")
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert answer.headers["location"] == f"/imports/{queued['id']}"
    assert queued["campaign"] == "diwali" and queued["file_name"] == "leads.csv"
    assert queued["state"] in ("queued", "running", "done")  # the worker may already have taken it

    summary = ended(http, answer.headers["location"])
    assert summary["state"] == "done" and summary["error"] is None
    assert {k: summary[k] for k in ("rows", "accepted", "rejected", "duplicates", "suppressed")} == {
        "rows": 4,
        "accepted": 2,
        "rejected": 1,
        "duplicates": 1,
        "suppressed": 0,
    }
    assert summary["started_at"] is not None and summary["finished_at"] is not None
    report = http.get(summary["report"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    bad = list(csv.reader(io.StringIO(report.text)))
    assert [row[:3] for row in bad[1:]] == [["4", "4", "12"]]  # file row 4 (the header is row 1)
    assert "not a valid phone number" in bad[1][3]
    with engine.connect() as conn:
        campaign = campaign_store.by_name(conn, "diwali")
        assert campaign is not None
        leads = campaign_store.leads_of(conn, campaign.id)
    assert [(lead.phone, lead.variables) for lead in leads] == [
        ("+919876543210", {"Name": "Asha", "city": "Pune"}),
        ("+919876543211", {"Name": "Ravi", "city": "Mumbai"}),
    ]
    # The stored upload is removed once imported.
    assert not uploads.upload_path(settings, summary["id"]).exists()

    # The same file again imports nothing twice, and with nothing rejected there is no report.
    all_good = LEADS.replace("Nobody;12;Nowhere\r\n", "")
    again = ended(http, upload(http, all_good, default_region="IN").headers["location"])
    assert again["accepted"] == 0 and again["duplicates"] == 3 and again["report"] is None
    assert http.get(f"/imports/{again['id']}/report.csv").status_code == 404
    listed = http.get("/campaigns/diwali/imports").json()
    assert [i["id"] for i in listed] == [again["id"], summary["id"]]


def test_a_file_refused_midway_fails_the_import_and_imports_nothing(
    worker: Callable[..., None], http: TestClient, engine: Engine
) -> None:
    # Readable header and encoding, so it is accepted; the quote opened on row 3 never closes.
    answer = upload(http, 'phone\n+12125551234\n"' + "x" * 200_000 + "\n+12125551235\n")
    assert answer.status_code == 202
    failed = ended(http, answer.headers["location"])
    assert failed["state"] == "failed" and "row 3 (line 3): field larger" in failed["error"]
    assert failed["accepted"] == 0 and failed["report"] is None
    assert http.get("/campaigns/diwali").json()["counts"] == {}


def test_whole_file_errors_are_422_and_keep_nothing(http: TestClient, engine: Engine, settings: Settings) -> None:
    answer = upload(http, "name,city\nAsha,Pune\n")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "file" and "phone" in answer.json()["detail"][0]["msg"]
    # Not UTF-8 far down the file is still found before answering, and named by line.
    answer = upload(http, b"phone\n" + b"+12125551234\n" * 20_000 + b"\xff\xfe\n")
    assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == "file"
    assert "line 20002" in answer.json()["detail"][0]["msg"]
    answer = upload(http, LEADS, default_region="XX")
    assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == "default_region"
    answer = upload(http, LEADS, phone_column="telephone")
    assert answer.status_code == 422 and "telephone" in answer.json()["detail"][0]["msg"]
    assert http.get("/campaigns/diwali").json()["counts"] == {}
    assert http.get("/campaigns/diwali/imports").json() == []
    assert not any((settings.data_dir / "uploads").glob("*"))


def test_upload_to_a_missing_or_cancelled_campaign(http: TestClient) -> None:
    assert upload(http, "phone\n+12125551234\n", campaign="nope").status_code == 404
    http.post("/campaigns/diwali/cancel")
    answer = upload(http, "phone\n+12125551234\n")
    assert answer.status_code == 409 and "cancelled" in answer.json()["detail"]


def test_an_import_is_seen_only_by_keys_that_reach_its_campaign(
    http: TestClient, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("outdial.worker.intake_tasks.send_run_import", lambda *_: None)
    location = upload(http, "phone\n+12125551234\n").headers["location"]
    assert http.get(location).json()["state"] == "queued"
    assert http.get("/imports/" + "0" * 32).status_code == 404
    assert http.get("/imports/not-an-id").status_code == 422
    other = create_key(engine, "other-campaign", datetime.now(UTC), scopes=["write", "campaign:someone-else"])
    assert client(settings, engine, other).get(location).status_code == 404


def test_a_broker_that_cannot_take_the_import_is_a_503_and_the_import_failed(
    http: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_: object) -> None:
        raise ConnectionError("redis is away")

    monkeypatch.setattr("outdial.worker.intake_tasks.send_run_import", unreachable)
    answer = upload(http, "phone\n+12125551234\n")
    assert answer.status_code == 503 and "upload the file again" in answer.json()["detail"]
    (failed,) = http.get("/campaigns/diwali/imports").json()
    assert failed["state"] == "failed" and "could not be queued" in failed["error"]
    # Nothing will import it: the stored upload is deleted, not left in the data directory.
    assert not uploads.upload_path(settings, failed["id"]).exists()
    assert not any((settings.data_dir / "uploads").glob("*"))


def test_an_import_stopped_by_an_internal_error_fails_and_its_file_goes(
    worker: Callable[..., None], http: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(uploads, "import_csv", broken)  # the test worker runs in this process
    failed = ended(http, upload(http, "phone\n+12125551234\n").headers["location"])
    assert failed["state"] == "failed" and "internal error (RuntimeError)" in failed["error"]
    assert not uploads.upload_path(settings, failed["id"]).exists()


def test_a_send_that_errs_after_a_worker_took_the_import_leaves_it_running(
    http: TestClient, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def taken_then_unreachable(sent: uploads.Upload, *_: object) -> None:
        # The message left and a worker started the import; then the broker's answer was lost.
        with engine.begin() as conn:
            assert import_store.start(conn, sent.import_id, datetime.now(UTC), NOW)
        raise ConnectionError("connection reset")

    monkeypatch.setattr("outdial.worker.intake_tasks.send_run_import", taken_then_unreachable)
    answer = upload(http, "phone\n+12125551234\n")
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "running" and answer.json()["error"] is None
    assert uploads.upload_path(settings, answer.json()["id"]).is_file()  # the worker's to read


def test_each_move_of_an_import_is_conditional(engine: Engine) -> None:
    with engine.begin() as conn:
        campaign_id = campaign_store.create(conn, {"name": "c", "account": "ck"})
        import_store.create(conn, "a" * 32, campaign_id, None, {}, None, NOW)
        assert import_store.start(conn, "a" * 32, NOW, NOW - STALE)
        counts = {"rows": 3, "accepted": 2, "rejected": 1, "duplicates": 0, "suppressed": 0}
        assert import_store.finish(conn, "a" * 32, counts, True, NOW)
        # Once done, a second delivery of the task, a late progress report or a failure change nothing.
        assert not import_store.start(conn, "a" * 32, NOW + 2 * STALE, NOW + STALE)
        import_store.record_progress(conn, "a" * 32, 99, 99, 99, NOW)
        assert not import_store.fail(conn, "a" * 32, "late", NOW)
        assert not import_store.finish(conn, "a" * 32, counts, True, NOW)
        done = import_store.by_id(conn, "a" * 32)
    assert done is not None and (done.state, done.rows, done.accepted, done.error) == ("done", 3, 2, None)


def test_a_running_import_is_taken_by_a_second_run_only_once_its_heartbeat_is_stale(engine: Engine) -> None:
    def start(at: datetime) -> bool:
        with engine.begin() as conn:
            return import_store.start(conn, "a" * 32, at, at - STALE)

    with engine.begin() as conn:
        campaign_id = campaign_store.create(conn, {"name": "c", "account": "ck"})
        import_store.create(conn, "a" * 32, campaign_id, None, {}, None, NOW)
    assert start(NOW)
    # A task delivered again while the first run is alive: refused, even long after its start,
    # as long as progress reports keep its heartbeat fresh.
    assert not start(NOW + timedelta(seconds=1))
    with engine.begin() as conn:
        import_store.record_progress(conn, "a" * 32, 10_000, 10_000, 0, NOW + STALE)
    assert not start(NOW + STALE + STALE - timedelta(seconds=1))
    # Silent for longer than the stale age: its worker died, and the next run takes it.
    assert start(NOW + STALE + STALE + timedelta(seconds=1))
    assert not start(NOW + STALE + STALE + timedelta(seconds=2))  # ... and now holds it
    with engine.connect() as conn:
        taken = import_store.by_id(conn, "a" * 32)
    assert taken is not None and taken.state == "running"
    assert taken.started_at == taken.progress_at == NOW + 2 * STALE + timedelta(seconds=1)


def test_progress_is_written_while_the_import_runs(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outdial.services.campaigns import create_campaign
    from outdial.services.requests import ImportOptions
    from outdial.services.timing.spec import TimingFields

    create_campaign(engine, settings, "big", "ck", TimingFields(callee_hours=None), NOW)
    rows = "phone\n" + "".join(f"+1212{5_000_000 + i}\n" for i in range(100_000))
    upload = uploads.accept_upload(
        engine, settings, "big", io.BytesIO(rows.encode()), ImportOptions(), file_name=None, uploaded_by="t", now=NOW
    )
    seen: list[tuple[str, int]] = []
    record = import_store.record_progress

    def spy(conn: Any, import_id: str, rows: int, accepted: int, rejected: int, now: datetime) -> None:
        record(conn, import_id, rows, accepted, rejected, now)
        found = import_store.by_id(conn, import_id)
        assert found is not None and found.progress_at == now  # each report is a heartbeat
        seen.append((found.state, found.rows))

    monkeypatch.setattr(import_store, "record_progress", spy)
    ended = uploads.run_upload(engine, settings, upload.import_id)
    assert ended is not None and (ended.state, ended.rows, ended.accepted) == ("done", 100_000, 100_000)
    assert len(seen) >= 2 and all(state == "running" for state, _ in seen)
    counts = [n for _, n in seen]
    assert counts == sorted(counts) and 0 < counts[0] < 100_000  # seen before the last row was read
