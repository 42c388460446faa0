"""Reading delimited files: any table written with any delimiter, BOM or line end reads back the same."""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outdial.services.intake.csv_table import DELIMITERS, Table, UnreadableTable, sniff_delimiter

# Cell text: anything printable, delimiters, quotes and line breaks included.
cell = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(",;\t|\"'\n\r "),
    max_size=12,
)


def encode(header: list[str], rows: list[list[str]], delimiter: str, bom: bool, line_end: str) -> bytes:
    out = io.StringIO()
    # csv.writer quotes only the line terminator's own characters, so a lone \r in a cell
    # of a \n file would go out unquoted (a file no reader can read back): quote all then.
    lone_cr = line_end == "\n" and any("\r" in c for r in rows for c in r)
    quoting = csv.QUOTE_ALL if lone_cr else csv.QUOTE_MINIMAL
    csv.writer(out, delimiter=delimiter, lineterminator=line_end, quoting=quoting).writerows([header, *rows])
    return (codecs.BOM_UTF8 if bom else b"") + out.getvalue().encode("utf-8")


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(1, 5))
    header = ["phone"] + [f"col{i}" for i in range(1, width)]
    rows = draw(
        st.lists(
            # A row that is all blank is no record (spreadsheets export those), so every row has a value.
            st.lists(cell, min_size=width, max_size=width).map(lambda r: ["v" + r[0], *r[1:]]),
            max_size=8,
        )
    )
    return header, rows


@given(tables(), st.sampled_from(DELIMITERS), st.booleans(), st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=300, deadline=None)
def test_any_table_reads_back_the_same(
    table: tuple[list[str], list[list[str]]], delimiter: str, bom: bool, line_end: str
) -> None:
    header, rows = table
    data = encode(header, rows, delimiter, bom, line_end)
    read = Table(io.BytesIO(data), ("phone",))
    assert read.header == header
    records = list(read)
    assert [fields for _row, _line, fields in records] == rows
    # Rows are numbered from the header (row 1); lines count physical lines, which embedded
    # line breaks make run ahead.
    assert [row for row, _line, _fields in records] == list(range(2, len(rows) + 2))
    lines = [line for _row, line, _fields in records]
    assert lines == sorted(lines) and all(line >= row for (row, line, _f) in records)


def test_line_numbers_count_embedded_line_breaks_and_blank_rows() -> None:
    data = b'phone,note\r\n+1,"two\r\nlines"\r\n\r\n,\r\n+2,x\r\n'
    records = list(Table(io.BytesIO(data), ("phone",)))
    # Row 2 spans lines 2-3; row 3 is blank and row 4 all empty cells: numbered (as a
    # spreadsheet would) but no records.
    assert records == [(2, 2, ["+1", "two\r\nlines"]), (5, 6, ["+2", "x"])]


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_delimiter_is_sniffed_from_the_phone_header(delimiter: str) -> None:
    sample = [f"name{delimiter}phone{delimiter}city\n", f"a, b{delimiter}+1{delimiter}x;y|z\n"]
    assert sniff_delimiter(sample, ("phone",)) == delimiter


def test_one_column_file_reads_as_comma() -> None:
    assert sniff_delimiter(["phone\n", "+12125551234\n"], ("phone",)) == ","


def test_latin1_fails_naming_the_byte_and_line() -> None:
    data = "phone,name\n+12125551234,Ann\n+12125551235,José\n".encode("latin-1")
    with pytest.raises(UnreadableTable) as info:
        list(Table(io.BytesIO(data), ("phone",)))
    message = str(info.value)
    assert "not UTF-8" in message and "byte 0xe9" in message and "line 3" in message
    at = data.index(b"\xe9")
    assert f"offset {at}" in message
    assert "\n" not in message


def test_undecodable_byte_far_into_the_file_is_found_with_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("outdial.services.intake.csv_table.CHUNK_BYTES", 64)  # many chunks, cut at line ends
    lines = [b"phone,name\n"] + [b"+1212555%04d,n\n" % i for i in range(100)]
    lines[77] = b"+12125550077,\xff\n"
    data = b"".join(lines)
    table = Table(io.BytesIO(data), ("phone",))
    at = data.index(b"\xff")
    with pytest.raises(UnreadableTable, match=rf"offset {at} \(line 78\)"):
        list(table)


def test_multibyte_characters_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("outdial.services.intake.csv_table.CHUNK_BYTES", 7)
    data = "phone,name\n+1,Zoë Ñandú 日本\n+2,ok\n".encode()
    assert [f for _r, _l, f in Table(io.BytesIO(data), ("phone",))] == [["+1", "Zoë Ñandú 日本"], ["+2", "ok"]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (codecs.BOM_UTF16_LE + "phone\n".encode("utf-16-le"), "UTF-16"),
    ],
)
def test_unreadable_files_fail_with_one_line(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableTable, match=message) as info:
        list(Table(io.BytesIO(data), ("phone",)))
    assert "\n" not in str(info.value)


def test_old_mac_line_ends() -> None:
    data = b"phone,name\r+1,a\r+2,b\r"
    assert [f for _r, _l, f in Table(io.BytesIO(data), ("phone",))] == [["+1", "a"], ["+2", "b"]]
