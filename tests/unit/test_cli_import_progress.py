"""``outdial import``'s progress: a Rich bar on a terminal (rows, rows/s, accepted, rejected so far),
plain lines into a pipe or a log, nothing with ``--json``."""

from __future__ import annotations

import re

import pytest

from outdial.cli import imports
from outdial.services.intake.csv_import import ImportProgress


def test_into_a_pipe_a_plain_line_per_interval(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setattr(imports, "PLAIN_EVERY_S", 0.0)
    with imports._progress(quiet=False) as report:
        assert report is not None
        report(ImportProgress(rows=50_000, accepted=49_990, rejected=10))
        report(ImportProgress(rows=100_000, accepted=99_980, rejected=20))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"imported 100000 rows \(\d+/s\): 99980 accepted, 20 rejected", lines[1]), lines


def test_on_a_terminal_a_bar_with_the_counts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich: treat the captured stderr as a terminal
    with imports._progress(quiet=False) as report:
        assert report is not None
        report(ImportProgress(rows=7_000, accepted=6_990, rejected=10))
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().err)
    assert "importing" in shown and "7000 rows" in shown and "/s" in shown
    assert "6990 accepted" in shown and "10 rejected" in shown
    assert "imported 7000 rows (" not in shown  # the bar, not the plain line


def test_json_output_shows_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    with imports._progress(quiet=True) as report:
        assert report is None
    assert capsys.readouterr() == ("", "")
