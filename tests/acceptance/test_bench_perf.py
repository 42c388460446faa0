"""``python -m bench perf --quick`` runs every scenario and reports every figure.

The harness is checked, not the machine: no timing is asserted, only that each
scenario ran and that its figure is a number (the import's may be null when
the import benchmark is absent, as documented in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEYS = (
    "dispatch_ratio",
    "dispatch_ideal_ratio",
    "paced_ideal_ratio",
    "latency_hiding_ratio",
    "scheduler_backlog_ratio",
    "worker_memory_ratio",
    "naive_eta_memory_ratio",
    "lateness_p50_s",
    "lateness_p99_s",
    "import_rows_per_s",
    "import_floor_ratio",
)
MAY_BE_NULL = {"import_rows_per_s", "import_floor_ratio"}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_perf_run_reports_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "perf", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in KEYS:
        assert key in figures, key
        if key in MAY_BE_NULL and figures[key] is None:
            continue
        assert _is_number(figures[key]), (key, figures[key])
    # The table came before it, one row per figure.
    assert all(any(line.startswith(key) for line in lines[:-1]) for key in KEYS)
    report = json.loads((REPO / "bench" / "results" / "perf-quick.json").read_text())
    assert report["dispatch"]["runs"][0]["dispatch_0ms"]["complete"]
    # The ideal task (the second baseline) placed every one of its calls too.
    assert report["dispatch"]["runs"][0]["ideal"]["complete"]
    assert report["dispatch"]["ideal_per_s"] > 0
    assert report["naive_eta"]["held_by_worker"] > 0
