"""Fault-injection points for the chaos suite (``python -m bench chaos``); inert in production.

``OUTDIAL_FAULT_DIR`` names a folder the chaos harness watches. Unset (always, outside the chaos
suite), every point is one comparison with ``None``. Set, a point stops its own process with
SIGSTOP when the harness has armed it, so the harness can pause a worker at an exact moment:
between its read of a job and its state change (issue 15). The harness arms a point by
creating ``<dir>/<point>.armed``; the first process to reach it takes the file (an atomic
rename, so exactly one stops), writes ``<dir>/<point>.stopped`` as ``"<pid> <job id>"`` and stops
until the harness sends SIGCONT.
"""

from __future__ import annotations

import os
import signal
from enum import StrEnum
from pathlib import Path

_DIR = os.environ.get("OUTDIAL_FAULT_DIR") or None


class Point(StrEnum):
    # In the worker's dispatch, after the job was read and admitted, before ``queued -> dialing``.
    BEFORE_BEGIN_DIAL = "before-begin-dial"


def reached(point: Point, job_id: int) -> None:
    """Stop here if the harness armed ``point``; otherwise return at once."""
    if _DIR is None:
        return
    folder = Path(_DIR)
    try:
        os.rename(folder / f"{point}.armed", folder / f"{point}.taken")
    except OSError:
        return  # not armed, or another process took it
    (folder / f"{point}.stopped").write_text(f"{os.getpid()} {job_id}")
    os.kill(os.getpid(), signal.SIGSTOP)
