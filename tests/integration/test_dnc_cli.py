"""``outdial dnc``: numbers added from lists and CSVs, removed, listed, and suppressed at import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from outdial.cli import app
from outdial.settings import Settings, reset_settings

runner = CliRunner()


@pytest.fixture
def cli_env(db_url: str, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", db_url)
    monkeypatch.setenv("OUTDIAL_ACCOUNTS_FILE", str(settings.accounts_file))
    monkeypatch.setenv("OUTDIAL_DATA_DIR", str(settings.data_dir))
    reset_settings()
    yield engine
    reset_settings()


def invoke(code: int, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stdout


def listed() -> list[str]:
    return [n["phone"] for n in json.loads(invoke(0, "dnc", "list", "--json"))]


def test_plain_list_with_comments_blank_lines_and_a_bad_entry(cli_env: Engine, tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("# opted out in May\n+12125551234\n\n+91 98765 43210\n(212) 555-1235\nnot a number\n")
    out = json.loads(invoke(1, "dnc", "add", str(path), "--json"))
    assert (out["added"], out["numbers"], out["invalid"]) == (2, 2, 2)
    assert [e["row"] for e in out["invalid_rows"]] == [5, 6]
    assert listed() == ["+12125551234", "+919876543210"]
    # With a default region the national number is read; what is listed already is not added twice.
    out = json.loads(invoke(1, "dnc", "add", str(path), "--default-region", "US", "--json"))
    assert (out["added"], out["numbers"], out["invalid"]) == (1, 3, 1)


def test_csv_with_a_phone_column(cli_env: Engine, tmp_path: Path) -> None:
    path = tmp_path / "optouts.csv"
    path.write_text("name;Mobile;date\nAnn;+447911123456;2026-05-01\nBob;+14155550123;2026-05-02\n")
    out = json.loads(invoke(0, "dnc", "add", str(path), "--json"))
    assert (out["added"], out["invalid"]) == (2, 0)
    entries = json.loads(invoke(0, "dnc", "list", "--json"))
    assert {e["phone"] for e in entries} == {"+447911123456", "+14155550123"}
    assert {e["source"] for e in entries} == {"optouts.csv"}


def test_remove_numbers_and_files(cli_env: Engine, tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("+12125551234\n+919876543210\n+447911123456\n")
    invoke(0, "dnc", "add", str(path))
    gone = tmp_path / "gone.txt"
    gone.write_text("+919876543210\n")
    out = json.loads(invoke(0, "dnc", "remove", "+1 212 555 1234", str(gone), "--json"))
    assert out["removed"] == 2
    assert listed() == ["+447911123456"]
    invoke(1, "dnc", "remove", "garbage")


def test_unreadable_list_is_one_line(cli_env: Engine, tmp_path: Path) -> None:
    result = runner.invoke(app, ["dnc", "add", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2 and result.stderr.strip().count("\n") == 0
    path = tmp_path / "latin.txt"
    path.write_bytes(b"phone,name\n+12125551234,Jos\xe9\n")
    result = runner.invoke(app, ["dnc", "add", str(path)])
    assert result.exit_code == 2 and "not UTF-8" in result.stderr
    assert listed() == []  # nothing half-added


def test_listed_numbers_are_suppressed_at_import(cli_env: Engine, tmp_path: Path) -> None:
    dnc = tmp_path / "dnc.txt"
    dnc.write_text("+12125551234\n")
    invoke(0, "dnc", "add", str(dnc))
    invoke(0, "campaign", "create", "c", "--account", "ck")
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n+1 (212) 555-1234\n+12125551235\n")
    summary = json.loads(invoke(0, "import", str(leads), "--campaign", "c", "--json"))
    assert (summary["accepted"], summary["suppressed"]) == (1, 1)
