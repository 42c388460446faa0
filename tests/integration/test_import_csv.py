"""CSV import on SQLite and PostgreSQL: awkward files, the counts, the report, the jobs made."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from outdial.errors import NotFound
from outdial.models import Job
from outdial.services.campaigns import create_campaign
from outdial.services.intake.csv_import import CHUNK_ROWS, ImportFailed, ImportProgress, ImportSummary, import_csv
from outdial.services.timing.admit import admit, merge_layers
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import dnc as dnc_store
from outdial.store import table

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
NY = "America/New_York"
job_table = table(Job)


def campaign(engine: Engine, settings: Settings, name: str = "c", **timing: object) -> int:
    fields = TimingFields.model_validate({"timezone": NY, **timing})
    return create_campaign(engine, settings, name, "ck", fields, NOW)


def write(tmp_path: Path, text: str, name: str = "leads.csv", encoding: str = "utf-8", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode(encoding))
    return path


def run(engine: Engine, settings: Settings, path: Path, name: str = "c", **kw: object) -> ImportSummary:
    summary = import_csv(engine, settings, name, path, now=NOW, **kw)  # type: ignore[arg-type]
    assert summary.rows == summary.accepted + summary.rejected + summary.duplicates + summary.suppressed
    return summary


def report_rows(summary: ImportSummary) -> list[list[str]]:
    """The report's rows; a report exists exactly when some row was rejected."""
    assert (summary.report is not None) == (summary.rejected > 0)
    if summary.report is None:
        return []
    with open(summary.report, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "row (the header is row 1)"
    return rows[1:]


def leads(engine: Engine, name: str = "c") -> list[tuple[str, dict[str, str], dict[str, object], int | None]]:
    with engine.connect() as conn:
        row = campaign_store.by_name(conn, name)
        assert row is not None
        return [(r.phone, r.variables, r.timing, r.source_row) for r in campaign_store.leads_of(conn, row.id)]


def jobs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(job_table).order_by(job_table.c.id)).all())


@pytest.mark.parametrize(
    ("delimiter", "line_end", "bom"),
    [(",", "\n", False), (";", "\r\n", True), ("\t", "\n", True), ("|", "\r\n", False)],
)
def test_delimiters_line_ends_and_bom(
    engine: Engine, settings: Settings, tmp_path: Path, delimiter: str, line_end: str, bom: bool
) -> None:
    campaign(engine, settings)
    d = delimiter
    text = line_end.join(
        [
            f"Phone{d}name{d}note",
            f"+12125551234{d}Ann{d}plain",
            f'+919876543210{d}"Ravi{d} Jr"{d}"two{line_end}lines"',
            f'+447911123456{d}"Bob ""B"""{d}',
            "",
        ]
    )
    summary = run(engine, settings, write(tmp_path, text, bom=bom))
    assert summary.as_dict() == {
        "rows": 3,
        "accepted": 3,
        "rejected": 0,
        "duplicates": 0,
        "suppressed": 0,
        "report": None,  # nothing rejected: no report file
    }
    # Rows are records (the header is row 1): Ravi's row spans two lines and is still row 3.
    assert leads(engine) == [
        ("+12125551234", {"name": "Ann", "note": "plain"}, {}, 2),
        ("+919876543210", {"name": f"Ravi{d} Jr", "note": f"two{line_end}lines"}, {}, 3),
        ("+447911123456", {"name": 'Bob "B"', "note": ""}, {}, 4),
    ]
    assert not (tmp_path / "leads.report.csv").exists()


def test_bad_rows_are_reported_with_row_line_and_reason(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    campaign(engine, settings)
    text = "\n".join(
        [
            "phone,name,timezone,priority,schedule_at",
            "+12125551234,ok,,,",  # row 2
            '+12125551235,"multi\nline",,,',  # row 3, lines 3-4
            "+1212555,short number,,,",  # row 4
            "+12125551236,too,many,fields,,,",  # row 5
            ",no phone,,,",  # row 6
            "+12125551237,bad zone,Mars/Base,,",  # row 7
            "+12125551238,bad priority,,500,",  # row 8
            "+12125551239,bad time,,,tomorrow",  # row 9
            "(212) 555-1240,national,,,",  # row 10
            "+12125551241,zone and priority,Asia/Kolkata,9,2026-12-02T10:00",  # row 11
            "",
        ]
    )
    summary = run(engine, settings, write(tmp_path, text))
    assert (summary.rows, summary.accepted, summary.rejected) == (10, 3, 7)
    reported = report_rows(summary)
    assert [(r[0], r[1]) for r in reported] == [
        ("4", "5"),
        ("5", "6"),
        ("6", "7"),
        ("7", "8"),
        ("8", "9"),
        ("9", "10"),
        ("10", "11"),
    ]
    reasons = [r[3] for r in reported]
    assert "not a valid phone number" in reasons[0]
    assert reasons[1] == "expected 5 fields, found 7"
    assert reasons[2] == "phone: the phone number is empty"
    assert reasons[3].startswith("timezone: unknown time zone 'Mars/Base'")
    assert reasons[4].startswith("priority: ")
    assert reasons[5].startswith("schedule_at: ")
    assert "no country code" in reasons[6]
    lead = leads(engine)[-1]
    assert lead[0] == "+12125551241"
    assert lead[2] == {"timezone": "Asia/Kolkata", "priority": 9, "schedule_at": "2026-12-02T10:00"}
    assert lead[1] == {"name": "zone and priority"}


def test_jobs_get_the_first_due_time_admit_decides(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    campaign(engine, settings, min_trigger_time="12:00", max_trigger_time="17:00", number_of_retries=2)
    text = "phone,timezone,priority\n+12125551234,,\n+919876543210,,\n+447911123456,Europe/London,5\n"
    run(engine, settings, write(tmp_path, text))
    made = jobs(engine)
    assert len(made) == 3
    base = {"timezone": NY, "min_trigger_time": "12:00", "max_trigger_time": "17:00", "number_of_retries": 2}
    for job, layer in zip(made, [{}, {}, {"timezone": "Europe/London", "priority": 5}], strict=True):
        expected = admit(merge_layers(base, layer), job.to_number, NOW, settings)
        assert (job.state, job.next_due_at, job.window_end, job.priority, job.timing) == (
            expected.state,
            expected.next_due_at,
            expected.window_end,
            expected.priority,
            expected.timing,
        )
        assert job.round == 1 and job.account == "ck" and job.retry_on == ["no_answer", "busy", "failed"]


def test_duplicates_dnc_and_reimport(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    campaign(engine, settings)
    with engine.begin() as conn:
        dnc_store.add(conn, ["+919876543210"], "test", NOW)
    text = "\n".join(
        [
            "phone,name",
            "+12125551234,a",
            "+1 (212) 555-1234,same number written differently",
            "+919876543210,on the dnc list",
            "+91 98765 43210,on the dnc list again",
            "+447911123456,b",
            "",
        ]
    )
    path = write(tmp_path, text)
    first = run(engine, settings, path)
    assert (first.rows, first.accepted, first.duplicates, first.suppressed, first.rejected) == (5, 2, 1, 2, 0)
    again = run(engine, settings, path)
    assert (again.rows, again.accepted, again.duplicates, again.suppressed) == (5, 0, 3, 2)
    assert len(leads(engine)) == 2 and len(jobs(engine)) == 2


def test_latin1_file_imports_nothing(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    campaign(engine, settings)
    # The bad byte is far down the file, after many good rows have been read.
    text = "phone,name\n" + "".join(f"+1212555{i:04d},n{i}\n" for i in range(2000)) + "+12125559999,José\n"
    path = write(tmp_path, text, encoding="latin-1")
    with pytest.raises(ImportFailed, match=r"not UTF-8: byte 0xe9 at offset \d+ \(line 2002\)") as info:
        run(engine, settings, path)
    assert "\n" not in str(info.value)
    assert leads(engine) == [] and jobs(engine) == []
    assert not (tmp_path / "leads.report.csv").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,city\nAnn,Pune\n", "no phone column"),
        ("", "the file is empty"),
    ],
)
def test_files_refused_as_a_whole(engine: Engine, settings: Settings, tmp_path: Path, text: str, message: str) -> None:
    campaign(engine, settings)
    with pytest.raises(ImportFailed, match=message):
        run(engine, settings, write(tmp_path, text))
    assert leads(engine) == []


def test_unknown_campaign_missing_file_bad_region(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    campaign(engine, settings)
    path = write(tmp_path, "phone\n+12125551234\n")
    with pytest.raises(NotFound, match="no campaign named 'nope'"):
        run(engine, settings, path, name="nope")
    with pytest.raises(ImportFailed, match="cannot read"):
        run(engine, settings, tmp_path / "missing.csv")
    with pytest.raises(ImportFailed, match="default region"):
        run(engine, settings, path, default_region="XX")


def test_named_phone_column_and_default_region(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    campaign(engine, settings)
    path = write(tmp_path, "Tel;Mobile Number;city\n098765 43210;x;Pune\n0123;y;Leeds\n")
    summary = run(engine, settings, path, phone_column="tel", default_region="IN")
    assert (summary.accepted, summary.rejected) == (1, 1)  # too short to be a number in India
    assert leads(engine)[0][:2] == ("+919876543210", {"Mobile Number": "x", "city": "Pune"})


def test_upload_stream_reports_under_the_data_dir(engine: Engine, settings: Settings) -> None:
    campaign(engine, settings, name="up/load")
    stream = io.BytesIO(b"phone\n+12125551234\nnope\n")
    summary = import_csv(engine, settings, "up/load", stream, now=NOW)
    assert summary.report is not None
    report = Path(summary.report)
    assert report.parent == settings.data_dir / "reports" and report.exists()
    assert (summary.accepted, summary.rejected) == (1, 1)


def test_large_file_goes_through_the_worker_pool(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    """Several chunks and batches: numbers validated by the process pool, duplicates across batches."""
    campaign(engine, settings, timezone="callee")
    lines = ["phone,i"]
    for i in range(25_000):
        lines.append(f"+1212{200 + i // 10000}{i % 10000:04d},{i}")
    lines.append("+12122000007,repeat of an early row")
    lines.append("garbage,x")
    summary = run(engine, settings, write(tmp_path, "\n".join(lines) + "\n"))
    assert (summary.rows, summary.accepted, summary.duplicates, summary.rejected) == (25_002, 25_000, 1, 1)
    assert report_rows(summary)[0][:2] == ["25003", "25003"]


# Any mix of good, bad, repeated and blocked numbers keeps the counts' invariant, and the
# leads are exactly the first good occurrence of each number not on the list.
GOOD = ["+12125551234", "+919876543210", "+447911123456", "+14155550123", "+61291234567"]
BAD = ["", "nope", "+1212", "12125551234"]


@given(
    rows=st.lists(st.sampled_from(GOOD + BAD), max_size=30),
    blocked=st.sets(st.sampled_from(GOOD), max_size=2),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
@hyp_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_counts_hold_for_any_file(
    engine: Engine, settings: Settings, tmp_path: Path, rows: list[str], blocked: set[str], delimiter: str
) -> None:
    from tests.conftest import _empty

    _empty(engine)
    campaign(engine, settings)
    with engine.begin() as conn:
        dnc_store.add(conn, sorted(blocked), "test", NOW)
    text = f"phone{delimiter}n\n" + "".join(f"{r}{delimiter}{i}\n" for i, r in enumerate(rows))
    summary = run(engine, settings, write(tmp_path, text))
    good = [r for r in rows if r in GOOD]
    assert summary.rows == len(rows)
    assert summary.rejected == len(rows) - len(good)
    assert summary.suppressed == sum(r in blocked for r in good)
    expected = list(dict.fromkeys(r for r in good if r not in blocked))
    assert [lead[0] for lead in leads(engine)] == expected
    assert summary.accepted == len(expected)
    assert len(report_rows(summary)) == summary.rejected


def test_progress_is_reported_per_chunk_and_a_clean_import_leaves_no_report(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    campaign(engine, settings)
    stale = tmp_path / "leads.report.csv"
    stale.write_text("an earlier import's report\n")
    rows = ["phone"] + [f"+1{('212', '312', '415')[i % 3]}555{i // 3:04d}" for i in range(2 * CHUNK_ROWS + 5)]
    seen: list[ImportProgress] = []
    summary = import_csv(
        engine, settings, "c", write(tmp_path, "\n".join(rows) + "\n"), now=NOW, on_progress=seen.append
    )
    assert summary.rejected == 0 and summary.report is None and not stale.exists()
    assert [p.rows for p in seen][-1] == 2 * CHUNK_ROWS + 5 and len(seen) == 3
    assert all(a.rows <= b.rows and a.accepted <= b.accepted for a, b in itertools.pairwise(seen))
