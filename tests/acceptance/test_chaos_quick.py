"""The quick chaos run, as CI runs it: faults injected into the whole stack, every invariant holding.

The order of the faults is drawn from a fresh seed on every run (printed in the report), so
repeated CI runs try orders this file does not name.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import TESTS_DIR

INVARIANTS = (
    "jobs_not_terminal",
    "unexplained_request_mismatch",
    "calls_outside_window",
    "rate_over_limit",
    "concurrency_over_limit",
)


@pytest.mark.slow
def test_quick_chaos_run_keeps_every_promise() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "chaos", "--quick"],
        cwd=TESTS_DIR.parent,
        capture_output=True,
        text=True,
        timeout=400,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"the chaos run printed no report; its stderr ends:\n{done.stderr[-3000:]}"
    report = json.loads(lines[-1])
    summary = {k: report[k] for k in (*INVARIANTS, "max_requests_per_attempt", "seed", "jobs_by_state", "faults")}
    assert report["max_requests_per_attempt"] <= 1, summary
    for key in INVARIANTS:
        assert report[key] == 0, summary
    assert len(report["faults"]) >= 5 and report["jobs"] >= 400
    assert done.returncode == 0, done.stderr[-2000:]
