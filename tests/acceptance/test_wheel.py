"""The built wheel installs one import package, `outdial`, and works outside the checkout:
the accounts file and the demo's leads come with it."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        cwd=out,
    )
    (built,) = out.glob("outdial-*.whl")
    return built


def test_the_wheel_has_one_top_level_import_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        (top_level,) = [n for n in zf.namelist() if n.endswith(".dist-info/top_level.txt")]
        assert zf.read(top_level).decode().split() == ["outdial"]
        roots = {name.split("/")[0] for name in zf.namelist() if not name.split("/")[0].endswith(".dist-info")}
        assert roots == {"outdial"}


def test_the_wheel_carries_the_accounts_file_and_the_demo_leads(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("outdial/accounts.toml") == (REPO / "config" / "accounts.toml").read_bytes()
        assert zf.read("outdial/demo/leads.csv") == (REPO / "examples" / "leads.csv").read_bytes()
        assert "outdial/api/templates/campaign.html" in zf.namelist()
        assert any(n.startswith("outdial/store/migrations/versions/0001") for n in zf.namelist())


@pytest.mark.slow
@pytest.mark.timeout(480)  # the whole demo, on a machine that may be busy
def test_outdial_demo_runs_from_a_plain_install_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The dependencies come from the test venv (a .pth line adds its site-packages, whose own
    # .pth files, among them the editable install of the checkout, are not processed).
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], check=True
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import outdial, outdial.settings as s; print(outdial.__file__); print(s.Settings().accounts_file)",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(workdir),
        "OUTDIAL_EMBEDDED_REDIS_PORT": "6417",
        "OUTDIAL_API_PORT": "18431",
        "OUTDIAL_SIMULATOR_PORT": "18432",
        "OUTDIAL_FLOWER_PORT": "18433",
    }
    done = subprocess.run(
        # The README's demo as it ships: the packaged leads (239 jobs), not a file of the checkout.
        [str(venv / "bin" / "outdial"), "demo", "--json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["not_terminal"] == 0 and summary["jobs"] == 239, done.stdout[-2000:]
    assert summary["max_requests_per_attempt"] == 1, summary
    # Issue 12: the scheduler budgets per campaign, so the worker's gate seldom hands a job back.
    dispatched = sum(summary["dispatch_results"].values())
    assert dispatched >= summary["jobs"], summary
    assert summary["hand_back_share"] < 0.05, summary["dispatch_results"]
