"""The quick chaos run, as CI runs it: faults injected into the whole stack, every invariant holding.

The order of the faults is drawn from a fresh seed on every run (printed in the report), so
repeated CI runs try orders this file does not name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import INVARIANTS, broken
from tests.conftest import TESTS_DIR


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
    # On failure, everything needed to look again: the seed (rerun with --seed), the broken
    # promises, and every offending job in full (never truncated).
    shown = {k: report[k] for k in ("seed", *INVARIANTS, "max_requests_per_attempt", "jobs_by_state", "faults")}
    shown |= {"violations": report["violations"], "logs": report["logs"]}
    if broken(report):
        pytest.fail(f"seed {report['seed']} broke {broken(report)}:\n{json.dumps(shown, indent=1)}", pytrace=False)
    assert len(report["faults"]) >= 5 and report["jobs"] >= 400
    assert done.returncode == 0, done.stderr[-2000:]
    # A run that kept its promises leaves nothing behind (its servers' data is tens of MB).
    assert not Path(report["workdir"]).exists()
