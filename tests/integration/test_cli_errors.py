"""A newcomer's mistakes get one line naming the fix, from the installed command (issue 16).

Each case runs ``python -m outdial`` as a user would, so the CLI's one translation point
(outdial/cli/errors.py, called from ``main``) is what is tested, tracebacks and all.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TESTS_DIR

REPO = TESTS_DIR.parent
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # port 1: nothing listens there


def outdial(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTDIAL_")}
    clean |= {"OUTDIAL_DATA_DIR": str(cwd / "var"), "OUTDIAL_LOG_FORMAT": "json", **env}
    return subprocess.run(
        [sys.executable, "-m", "outdial", *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout
    )


def one_line(done: subprocess.CompletedProcess[str], *names: str) -> str:
    """The failure printed one ``error:`` line, naming each of ``names``, and no traceback."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for name in names:
        assert name in lines[0]
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder of the user's own (no .env unless a test writes one)."""
    return tmp_path


@pytest.mark.parametrize(
    ("command", "url"),
    [
        (["campaign", "list"], "postgres://me:secret@:::"),
        (["db", "upgrade"], "mysql://me@db.example/leads"),
        (["status", "x"], "nonsense"),
        (["keys", "list"], "postgres://me:secret@:::"),
    ],
)
def test_an_unusable_database_url_is_one_line_naming_the_variable(home: Path, url: str, command: list[str]) -> None:
    line = one_line(outdial(*command, cwd=home, OUTDIAL_DATABASE_URL=url), "OUTDIAL_DATABASE_URL", "unset it")
    assert "secret" not in line


def test_an_unreachable_database_is_one_line_naming_the_variable(home: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    one_line(outdial("campaign", "list", cwd=home, OUTDIAL_DATABASE_URL=url), "OUTDIAL_DATABASE_URL", "127.0.0.1")


@pytest.mark.parametrize("url", ["postgres://me:secret@:::", "nonsense"])
def test_doctor_reports_an_unusable_database_url_instead_of_crashing(home: Path, url: str) -> None:
    done = outdial("doctor", cwd=home, OUTDIAL_DATABASE_URL=url)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (database,) = [line for line in done.stdout.splitlines() if "database:" in line]
    assert database.startswith("FAIL") and "OUTDIAL_DATABASE_URL" in database and "secret" not in database


@pytest.mark.parametrize("part", ["scheduler", "worker", "up"])
def test_an_unreachable_redis_fails_fast_naming_the_variable(home: Path, part: str) -> None:
    one_line(outdial(part, cwd=home, timeout=30, OUTDIAL_REDIS_URL=UNREACHABLE_REDIS), "OUTDIAL_REDIS_URL")


def test_up_refuses_at_once_when_its_port_is_taken(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = outdial("up", cwd=home, timeout=30, OUTDIAL_API_PORT=port)
    line = one_line(done, "OUTDIAL_API_PORT", port)
    assert "outdial is up" not in done.stdout + line


def test_every_command_reads_a_dotenv_file_in_the_current_folder(home: Path) -> None:
    """`outdial up` fills the demo credentials only for its children; .env gives them to any shell."""
    without = outdial("doctor", "--json", cwd=home)
    assert "OUTDIAL_SIM_CALLKARO_API_KEY" in without.stdout
    shutil.copy(REPO / ".env.example", home / ".env")
    with_env = outdial("doctor", "--json", cwd=home)
    assert "OUTDIAL_SIM_CALLKARO_API_KEY" not in with_env.stdout
    # A variable already set wins over the file.
    kept = outdial("doctor", "--json", cwd=home, OUTDIAL_SIM_CALLKARO_API_KEY="")
    assert "OUTDIAL_SIM_CALLKARO_API_KEY" in kept.stdout


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("OUTDIAL_CALLEE_HOURS", "9am-5pm", "OUTDIAL_CALLEE_HOURS: '9am-5pm' is not HH:MM-HH:MM, or off"),
        ("OUTDIAL_API_PORT", "eighty", "OUTDIAL_API_PORT: Input should be a valid integer"),
    ],
)
def test_a_malformed_setting_stops_the_command_naming_the_variable_and_value(
    home: Path, variable: str, value: str, said: str
) -> None:
    # Before: a bad OUTDIAL_CALLEE_HOURS let an import run and reject every lead, exiting 0.
    done = outdial("campaign", "list", cwd=home, **{variable: value})
    assert done.returncode == 2 and said in one_line(done, variable, repr(value) if "HOURS" in variable else value)
    assert outdial("campaign", "list", cwd=home, OUTDIAL_CALLEE_HOURS="off").returncode == 0
