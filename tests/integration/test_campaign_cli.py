"""``outdial campaign`` and ``outdial import`` through the CLI: exit codes, JSON, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from outdial.cli import app
from outdial.settings import Settings, get_settings, reset_settings
from outdial.store import campaigns as campaign_store

runner = CliRunner()


@pytest.fixture
def cli_env(db_url: str, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The CLI reads OUTDIAL_* like any process would: pointed at the test database and accounts."""
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", db_url)
    monkeypatch.setenv("OUTDIAL_ACCOUNTS_FILE", str(settings.accounts_file))
    monkeypatch.setenv("OUTDIAL_DATA_DIR", str(settings.data_dir))
    reset_settings()
    yield engine
    reset_settings()


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def error(code: int, *args: str) -> str:
    """The command fails with ``code`` and exactly one line on stderr."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_create_and_list(cli_env: Engine) -> None:
    out = ok(
        "campaign", "create", "reminders", "--account", "ck", "--timezone", "Asia/Kolkata",
        "--min-trigger-time", "10:00", "--max-trigger-time", "18:00", "--days", "mon,tue,wed",
        "--carry-over", "--retries", "3", "--gap", "10", "--gap", "30,60", "--priority", "5",
        "--callee-hours", "off", "--retry-on", "no_answer,busy", "--calls-per-minute", "30", "--json",
    )  # fmt: skip
    created = json.loads(out)
    assert created["name"] == "reminders" and created["account"] == "ck" and created["state"] == "active"
    assert created["timing"] == {
        "timezone": "Asia/Kolkata",
        "min_trigger_time": "10:00",
        "max_trigger_time": "18:00",
        "days_of_week": "mon,tue,wed",
        "carry_over": True,
        "number_of_retries": 3,
        "gap_between_retries": [10, 30, 60],
        "priority": 5,
        "callee_hours": None,
    }
    assert created["retry_on"] == ["no_answer", "busy"] and created["calls_per_minute"] == 30
    ok("campaign", "create", "plain", "--account", "ck")
    listed = json.loads(ok("campaign", "list", "--json"))
    assert [(c["name"], c["leads"]) for c in listed] == [("reminders", 0), ("plain", 0)]
    assert "reminders" in ok("campaign", "list")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--account", "nope"], "--account: no account named 'nope'"),
        (["--account", "ck", "--retries", "11"], "--retries:"),
        (["--account", "ck", "--timezone", "Mars/Base"], "--timezone: unknown time zone"),
        (["--account", "ck", "--min-trigger-time", "9:00", "--max-trigger-time", "09:00"], "--max-trigger-time:"),
        (["--account", "ck", "--min-trigger-time", "25:00"], "--min-trigger-time:"),
        (["--account", "ck", "--gap", "ten"], "--gap: 'ten'"),
        (["--account", "ck", "--gap", "-5"], "--gap:"),
        (["--account", "ck", "--priority", "101"], "--priority:"),
        (["--account", "ck", "--days", "funday"], "--days:"),
        (["--account", "ck", "--callee-hours", "09:00"], "--callee-hours:"),
        (["--account", "ck", "--retry-on", "sometimes"], "--retry-on: unknown outcomes ['sometimes']"),
        (["--account", "ck", "--cron", "every day"], "--cron: 'every day' is not a cron expression"),
    ],
)
def test_invalid_options_name_the_option(cli_env: Engine, args: list[str], names: str) -> None:
    line = error(2, "campaign", "create", "x", *args)
    assert names in line
    with cli_env.connect() as conn:
        assert campaign_store.by_name(conn, "x") is None


def test_a_name_is_used_once(cli_env: Engine) -> None:
    ok("campaign", "create", "x", "--account", "ck")
    # A conflict with what exists is a refusal (1), not bad input (2).
    assert "exists already" in error(1, "campaign", "create", "x", "--account", "ck")


def test_import_command(cli_env: Engine, tmp_path: Path) -> None:
    ok("campaign", "create", "c", "--account", "ck")
    leads = tmp_path / "leads.csv"
    leads.write_text("phone;name\n+12125551234;Ann\nnope;Bad\n+12125551234;Again\n")
    summary = json.loads(ok("import", str(leads), "--campaign", "c", "--json"))
    report = Path(summary.pop("report"))
    assert summary == {"rows": 3, "accepted": 1, "rejected": 1, "duplicates": 1, "suppressed": 0}
    # The report goes under the data directory, never beside the lead file (a work tree stays clean).
    assert report.parent == get_settings().data_dir / "reports" and "nope" in report.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("leads")) == ["leads.csv"]
    human = ok("import", str(leads), "--campaign", "c", "--report", str(tmp_path / "bad-rows.csv"))
    assert "3 rows: 0 accepted, 1 rejected, 2 duplicates" in human and str(tmp_path / "bad-rows.csv") in human
    assert "nope" in (tmp_path / "bad-rows.csv").read_text()
    assert json.loads(ok("campaign", "list", "--json"))[0]["leads"] == 1


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "cannot read"),
        (b"name,city\nAnn,Pune\n", [], "no phone column"),
        (b"phone,name\n+12125551234,Jos\xe9\n", [], "not UTF-8: byte 0xe9 at offset 27 (line 2)"),
        (b"phone\n+12125551234\n", ["--phone-column", "tel"], "no column named 'tel'"),
        (b"phone\n+12125551234\n", ["--default-region", "XX"], "default region"),
    ],
)
def test_import_refusals_are_one_line(
    cli_env: Engine, tmp_path: Path, content: bytes | None, args: list[str], message: str
) -> None:
    ok("campaign", "create", "c", "--account", "ck")
    path = tmp_path / "leads.csv"
    if content is not None:
        path.write_bytes(content)
    assert message in error(2, "import", str(path), "--campaign", "c", *args)
    with cli_env.connect() as conn:
        campaign = campaign_store.by_name(conn, "c")
        assert campaign is not None and campaign_store.leads_of(conn, campaign.id) == []


def test_import_into_unknown_campaign(cli_env: Engine, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("phone\n+12125551234\n")
    assert "no campaign named 'nope'" in error(1, "import", str(path), "--campaign", "nope")
