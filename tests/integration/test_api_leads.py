"""CSV lead lists uploaded into a campaign through the API: the same import as ``outdial import``."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from outdial.api.app import create_app
from outdial.api.auth import create_key
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store

LEADS = (
    "\ufeffName;Mobile;city\r\n"  # UTF-8 with BOM, semicolons, a phone column by a common name
    "Asha;+91 98765 43210;Pune\r\n"
    "Ravi;09876543211;Mumbai\r\n"  # national format, needs the default region
    "Nobody;12;Nowhere\r\n"  # not a number
    "Asha again;+919876543210;Pune\r\n"  # a duplicate of row 1
)


@pytest.fixture
def http(settings: Settings, engine: Engine) -> TestClient:
    key = create_key(engine, "tests", datetime.now(UTC))
    client = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    client.headers["X-API-Key"] = key
    assert client.post("/campaigns", json={"name": "diwali", "account": "ck"}).status_code == 201
    return client


def upload(http: TestClient, content: str | bytes, **params: str) -> tuple[int, dict[str, object]]:
    data = content.encode() if isinstance(content, str) else content
    response = http.post("/campaigns/diwali/leads", params=params, files={"file": ("leads.csv", data, "text/csv")})
    return response.status_code, response.json()


def test_upload_imports_and_reports_bad_rows(http: TestClient, engine: Engine) -> None:
    status, summary = upload(http, LEADS, default_region="IN")
    assert status == 200, summary
    assert {k: v for k, v in summary.items() if k != "report"} == {
        "rows": 4,
        "accepted": 2,
        "rejected": 1,
        "duplicates": 1,
        "suppressed": 0,
    }
    with Path(str(summary["report"])).open(newline="", encoding="utf-8") as report:
        bad = list(csv.reader(report))
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
    # The same file again imports nothing twice.
    status, again = upload(http, LEADS, default_region="IN")
    assert status == 200 and again["accepted"] == 0 and again["duplicates"] == 3


def test_whole_file_errors_are_422_and_import_nothing(http: TestClient) -> None:
    status, body = upload(http, "name,city\nAsha,Pune\n")
    assert status == 422
    assert body["detail"][0]["field"] == "file" and "phone" in body["detail"][0]["msg"]  # type: ignore[index]
    status, body = upload(http, b"phone\n+12125551234\n\xff\xfe\n")
    assert status == 422 and body["detail"][0]["field"] == "file"  # type: ignore[index]
    status, body = upload(http, LEADS, default_region="XX")
    assert status == 422 and body["detail"][0]["field"] == "default_region"  # type: ignore[index]
    status, body = upload(http, LEADS, phone_column="telephone")
    assert status == 422 and "telephone" in body["detail"][0]["msg"]  # type: ignore[index]
    assert http.get("/campaigns/diwali").json()["counts"] == {}


def test_upload_to_a_missing_or_cancelled_campaign(http: TestClient) -> None:
    response = http.post("/campaigns/nope/leads", files={"file": ("l.csv", b"phone\n+12125551234\n")})
    assert response.status_code == 404
    http.post("/campaigns/diwali/cancel")
    status, _ = upload(http, "phone\n+12125551234\n")
    assert status == 409
