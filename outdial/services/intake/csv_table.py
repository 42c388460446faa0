"""A delimited text file read as records, streamed in bounded memory.

UTF-8 with or without a byte-order mark; the delimiter is sniffed among
comma, semicolon, tab and pipe; quoted fields may hold delimiters and line
breaks. The bytes are decoded in chunks cut at line ends, so a byte that is
not UTF-8 is reported with its exact offset and line, and memory stays at a
chunk or two however long the file is.

Numbering: a *row* is a CSV record, the header being row 1 (a record may span
several lines when a quoted field holds line breaks); a *line* is a physical
line of the file, the first being line 1.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

from outdial.errors import InputError

DELIMITERS = (",", ";", "\t", "|")
CHUNK_BYTES = 1 << 20
# A "line" longer than this means the file is not a table (or has no line breaks at all).
MAX_LINE_BYTES = 16 << 20
_SNIFF_LINES = 50
_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class UnreadableTable(InputError):
    """The file as a whole cannot be read as a table; the message is one line for a person."""


# (row, line, fields): the row number (the header is row 1), the physical line the
# record starts on, and its fields. A plain tuple: a million of them are made per import.
Record = tuple[int, int, list[str]]


def _decoded_chunks(source: BinaryIO, first: bytes) -> Iterator[Iterator[str]]:
    """Decoded text lines (with their line ends), a chunk's worth at a time, from ``first``
    and then the rest of ``source``."""
    offset = 0  # bytes of the file before ``pending``
    lines_before = 0
    pending = b""
    data = first
    while True:
        if not data:
            if pending:
                yield _split(_decode(pending, offset, lines_before))
            return
        buf = pending + data
        cut = buf.rfind(b"\n") + 1 or buf.rfind(b"\r") + 1  # files with old Mac line ends have no \n
        if cut == 0:
            if len(buf) > MAX_LINE_BYTES:
                raise UnreadableTable(
                    f"line {lines_before + 1} is longer than {MAX_LINE_BYTES >> 20} MB: this is not a CSV table"
                )
            pending = buf
        else:
            yield _split(_decode(buf[:cut], offset, lines_before))
            lines_before += buf.count(b"\n", 0, cut)
            offset += cut
            pending = buf[cut:]
        try:
            data = source.read(CHUNK_BYTES)
        except OSError as exc:
            raise UnreadableTable(f"cannot read the file: {exc.strerror or exc}") from None


def _decode(chunk: bytes, offset: int, lines_before: int) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = offset + exc.start
        line = lines_before + chunk.count(b"\n", 0, exc.start) + 1
        raise UnreadableTable(
            f"the file is not UTF-8: byte 0x{chunk[exc.start]:02x} at offset {at} (line {line}) cannot be decoded;"
            ' save it as UTF-8 ("CSV UTF-8") and import it again'
        ) from None


def _split(text: str) -> Iterator[str]:
    # newline="" keeps \r\n, \n and \r line ends as they are, which is what csv expects.
    return iter(io.StringIO(text, newline=""))


def _read_start(source: BinaryIO) -> bytes:
    try:
        first = source.read(CHUNK_BYTES)
    except OSError as exc:
        raise UnreadableTable(f"cannot read the file: {exc.strerror or exc}") from None
    for bom in _UTF16_32_BOMS:
        if first.startswith(bom):
            raise UnreadableTable('the file is UTF-16 or UTF-32; save it as UTF-8 ("CSV UTF-8") and import it again')
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    return first


def normalise_name(name: str) -> str:
    """A header name compared loosely: ``Phone Number`` and ``phone-number`` are ``phone_number``."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def sniff_delimiter(sample: list[str], wanted: tuple[str, ...]) -> str:
    """The delimiter among :data:`DELIMITERS` that reads the sample best.

    Best means, in order: the header names one of ``wanted`` (normalised);
    there is more than one column; the most rows have the header's width;
    the most columns. Ties go to the earlier delimiter, so a one-column file
    reads as comma-separated.
    """
    best: tuple[tuple[bool, bool, float, int], str] | None = None
    for delimiter in DELIMITERS:
        try:
            records = [r for r in csv.reader(sample, delimiter=delimiter) if r]
        except csv.Error:
            continue
        if not records:
            continue
        header, body = records[0], records[1:]
        names = {normalise_name(h) for h in header}
        width = len(header)
        consistent = sum(len(r) == width for r in body) / len(body) if body else 1.0
        score = (any(w in names for w in wanted), width > 1, consistent, width)
        if best is None or score > best[0]:
            best = (score, delimiter)
    return best[1] if best else ","


class Table:
    """The header and then the records of a delimited file.

    ``wanted`` are header names (normalised) that help pick the delimiter,
    such as the phone column's possible names.
    """

    def __init__(self, source: BinaryIO, wanted: tuple[str, ...]) -> None:
        first = _read_start(source)
        if not first.strip():
            raise UnreadableTable("the file is empty")
        # chain.from_iterable keeps the per-line work in C: a million lines pass through here.
        lines = chain.from_iterable(_decoded_chunks(source, first))
        sample: list[str] = []
        for line in lines:
            sample.append(line)
            if len(sample) >= _SNIFF_LINES:
                break
        self.delimiter = sniff_delimiter(sample, wanted)
        self._reader = csv.reader(chain(sample, lines), delimiter=self.delimiter)
        self.header: list[str] = []
        self._row = 0
        for _row, _line, fields in self._records():
            self.header = fields
            break
        if not self.header:
            raise UnreadableTable("the file has no header row")

    def _records(self) -> Iterator[Record]:
        reader = self._reader
        line_end = reader.line_num
        try:
            for fields in reader:
                self._row += 1
                start, line_end = line_end + 1, reader.line_num
                # Blank lines (and rows of empty cells, as spreadsheets export them) keep their
                # row number, as in a spreadsheet, but are no records.
                if fields and "".join(fields).strip():
                    yield (self._row, start, fields)
        except csv.Error as exc:
            raise UnreadableTable(f"row {self._row + 1} (line {line_end + 1}): {exc}") from None

    def __iter__(self) -> Iterator[Record]:
        """The data records after the header."""
        return self._records()


def check_encoding(source: BinaryIO) -> None:
    """Read ``source`` to its end; raise :class:`UnreadableTable` (naming offset and line) unless it is UTF-8."""
    for _lines in _decoded_chunks(source, _read_start(source)):
        pass
