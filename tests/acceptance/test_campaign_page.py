"""The campaign page in headless Chromium: counts per state, outcomes, and a dial-rate chart that renders."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
from PIL import Image
from sqlalchemy import Engine

from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.dispatch import Dispatcher
from outdial.services.providers.accounts import load_accounts
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store.db import make_engine, upgrade

API_PORT = 18320
START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def fill_campaign(engine: Engine, settings: Settings) -> int:
    """A campaign whose calls went out over ten minutes at a changing rate, with mixed outcomes."""
    campaign_id = create_campaign(engine, settings, "spring reminders", "ck", TimingFields(number_of_retries=0), START)
    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
    leads = [LeadIn(phone=f"+1212555{1000 + i:04d}") for i in range(40)]
    add_leads(engine, settings, campaign, leads, START)
    dispatcher = Dispatcher(engine, settings, load_accounts(settings.accounts_file), httpx.Client())
    answers = [httpx.Response(200, json={"call_sid": f"c{i}"}) for i in range(30)]
    answers += [httpx.Response(400, json={"status": "error", "message": "Invalid agent"})] * 5
    with respx.mock:
        respx.post("http://callkaro.test/call/outbound").mock(side_effect=answers)
        sent: list[int] = []
        Scheduler(engine, settings, sent.append).tick(START)
        per_minute = [2, 5, 8, 3, 0, 6, 9, 2]  # the chart's shape
        for minute, n in enumerate(per_minute):
            for k in range(n):
                if sent:
                    dispatcher.dispatch(sent.pop(), START + timedelta(minutes=minute, seconds=k * 5))
    return campaign_id


def screenshot(url: str, out: Path, profile: Path) -> None:
    subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1100,1000",
         f"--screenshot={out}", url],
        check=True, timeout=90, capture_output=True,
    )  # fmt: skip


def dump_dom(url: str, profile: Path) -> str:
    done = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        check=True, timeout=90, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout


@pytest.mark.slow
def test_campaign_page_renders_counts_outcomes_and_the_chart(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium()
    db_url = f"sqlite:///{tmp_path / 'outdial.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    settings.callee_hours = None
    campaign_id = fill_campaign(engine, settings)

    env = {
        **os.environ,
        "OUTDIAL_DATABASE_URL": db_url,
        "OUTDIAL_ACCOUNTS_FILE": str(settings.accounts_file),
        "OUTDIAL_DATA_DIR": str(tmp_path / "var"),
    }
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "outdial", "api", "--host", "127.0.0.1", "--port", str(API_PORT)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{API_PORT}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and api.poll() is None, log.read_text()
            time.sleep(0.2)

        listing = dump_dom(f"{base}/ui/campaigns", tmp_path / "profile-list")
        assert "spring reminders" in listing and f"/ui/campaigns/{campaign_id}" in listing

        page = f"{base}/ui/campaigns/{campaign_id}"
        dom = dump_dom(page, tmp_path / "profile-dom")
        states = re.search(r'<table id="states">(.*?)</table>', dom, re.S)
        assert states is not None
        headers = re.findall(r"<th>(\w+)</th>", states.group(1))
        cells = [int(n) for n in re.findall(r"<td[^>]*>(\d+)</td>", states.group(1))]
        counts = dict(zip(headers, cells, strict=True))
        assert counts["accepted"] == 30 and counts["rejected"] == 5 and counts["queued"] == 5
        assert sum(counts.values()) == 40
        assert "35 attempts" in dom
        assert re.search(r"<td>accepted</td><td>30</td>", dom) and re.search(r"<td>rejected</td><td>5</td>", dom)
        points = re.findall(r'<circle class="point" cx="([\d.]+)" cy="([\d.]+)"', dom)
        assert len(points) >= 8  # one per bucket over the eight minutes
        heights = {float(cy) for _, cy in points}
        assert len(heights) >= 3  # the rate changes, and the line shows it

        shot = tmp_path / "campaign.png"
        screenshot(page, shot, tmp_path / "profile-shot")
        image = Image.open(shot).convert("RGB")
        # The series is drawn in #1f5fbf: count its pixels inside the chart's area.
        series = sum(1 for r, g, b in image.getdata() if abs(r - 0x1F) < 40 and abs(g - 0x5F) < 40 and b > 150)
        assert series > 500, f"the chart's line is not visible ({series} pixels); see {shot}"
        keep = os.environ.get("OUTDIAL_TEST_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(timeout=20)
