"""The report of an import's rejected rows: a CSV a person can open beside the lead file.

Written to a temporary name as rows are rejected (so memory does not grow
with them) and moved into place only when the import succeeded.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TextIO

# The header says which numbering the rows use (see outdial/services/intake/csv_table.py).
REPORT_HEADER = ("row (the header is row 1)", "line", "phone", "reason")

# Values a spreadsheet would run as a formula; the report echoes file content.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    # Phone numbers start with "+" legitimately; only neutralise what is not one.
    if value.startswith(_FORMULA_START) and not value.lstrip("+").replace(" ", "").isdigit():
        return "'" + value
    return value


class RejectReport:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = self._partial.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(REPORT_HEADER)
        self.count = 0

    def reject(self, row: int, line: int, phone: str, reason: str) -> None:
        self._writer.writerow((row, line, _cell(phone), _cell(reason)))
        self.count += 1

    def finish(self) -> Path | None:
        """Move the report into place; with nothing rejected there is no report (None), and an
        earlier import's report at the same path is removed rather than left to mislead."""
        if not self.count:
            self.discard()
            self.path.unlink(missing_ok=True)
            return None
        self._file.close()
        os.replace(self._partial, self.path)
        return self.path

    def discard(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)
