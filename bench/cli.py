"""``python -m bench cli [--runs N]``: how long ``outdial --help`` takes, against Python's own start-up.

Every command pays the CLI's start-up before doing anything, so ``--help`` measures it
alone. The baseline (``python -c pass``) is measured in the same run, interleaved, so a
busy machine slows both alike; the report gives the medians, the CLI's cost over the
baseline, and the heavy libraries ``import outdial.cli`` loads (none, when every command
imports its own).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import REPO_ROOT

LIMIT_S = 0.5
# Libraries only some commands need: importing any of them up front costs every command.
HEAVY = ("alembic", "celery", "fastapi", "sqlalchemy", "kombu", "httpx", "uvicorn", "rich", "redis", "pydantic")


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=REPO_ROOT)
    return time.perf_counter() - started


def heavy_imports() -> list[str]:
    probe = f"import sys, outdial.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def command() -> list[str]:
    """The installed ``outdial`` script next to this Python, else ``python -m outdial``."""
    script = Path(sys.executable).parent / "outdial"
    return [str(script)] if script.exists() else [sys.executable, "-m", "outdial"]


def run(runs: int) -> dict[str, object]:
    cli, baseline = [*command(), "--help"], [sys.executable, "-c", "pass"]
    timed(cli)  # one unmeasured run: the first reads the files from disk
    help_s, pass_s = [], []
    for _ in range(runs):
        help_s.append(timed(cli))
        pass_s.append(timed(baseline))
    median_help, median_pass = statistics.median(help_s), statistics.median(pass_s)
    return {
        "command": " ".join(Path(cli[0]).name if i == 0 else a for i, a in enumerate(cli)),
        "runs": runs,
        "help_median_s": round(median_help, 3),
        "help_min_s": round(min(help_s), 3),
        "baseline_median_s": round(median_pass, 3),
        "over_baseline_s": round(median_help - median_pass, 3),
        "limit_s": LIMIT_S,
        "heavy_imports_of_outdial_cli": heavy_imports(),
        "ok": median_help < LIMIT_S,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cli", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each (default 15)")
    args = parser.parse_args(argv)
    if shutil.which("outdial") is None and not (Path(sys.executable).parent / "outdial").exists():
        print("note: no outdial script installed; timing python -m outdial", file=sys.stderr)
    report = run(args.runs)
    print(json.dumps(report))
    return 0 if report["ok"] else 1
