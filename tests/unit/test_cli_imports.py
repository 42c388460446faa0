"""The ``outdial`` command starts fast: the heavy libraries are imported by the commands that use them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("alembic", "celery", "fastapi", "sqlalchemy", "kombu", "uvicorn", "httpx", "rich")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = f"import sys, outdial.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_help_lists_every_command_without_them() -> None:
    probe = (
        "import sys\nfrom outdial.cli import app\nimport typer.testing\n"
        "out = typer.testing.CliRunner().invoke(app, ['--help']).output\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules)); print(out)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded, _, shown = done.stdout.partition("\n")
    assert loaded.split() == []
    for name in ("up", "demo", "db", "campaign", "import", "plan", "doctor", "keys", "status", "export"):
        assert f"  {name} " in shown
