"""Benchmarks, run from the repository root: ``python -m bench SUBCOMMAND``."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
