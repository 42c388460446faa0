"""The campaign page in headless Chromium: counts per state, outcomes, a dial-rate chart that renders;
and an operator's round trip driven through the browser (Chrome DevTools Protocol over a pipe, no
driver to install): pause the campaign from the page, read why it is not dialling and when its next
call is due, list its unknown jobs, retry one; the whole page within 1400 px, kept as a screenshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
from PIL import Image
from sqlalchemy import Engine

from outdial.api.auth import create_key
from outdial.models import JobState
from outdial.scheduler.loop import Scheduler
from outdial.services.campaigns import LeadIn, add_leads, create_campaign
from outdial.services.dispatch import Dispatcher
from outdial.services.providers.accounts import load_accounts
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store import jobs as job_store
from outdial.store.db import make_engine, upgrade
from tests.acceptance.browser import CHROMIUM_FLAGS, PAGE_WIDTH, ApiProcess, Browser, chromium

API_PORT = 18320
# Ten minutes ago, on the minute: eight minutes of calls, then two quiet ones up to now.
START = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).replace(hour=14, minute=30, second=0, microsecond=0)


def fill_campaign(engine: Engine, settings: Settings) -> int:
    """A campaign whose calls went out over ten minutes at a changing rate, with mixed outcomes."""
    timing = TimingFields(number_of_retries=0, timezone="America/New_York")
    campaign_id = create_campaign(engine, settings, "spring reminders", "ck", timing, START)
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
    with engine.begin() as conn:
        # Four calls whose outcome never came; three new leads still to call, due tomorrow.
        accepted = [j.id for j in job_store.campaign_jobs(conn, campaign_id, states=["accepted"], limit=4)]
        for job_id in accepted:
            job_store.mark_unknown(conn, job_id, JobState.ACCEPTED, START, "no outcome reported in time")
    later = [LeadIn(phone=f"+1212555{2000 + i:04d}", timing={"schedule_at": TOMORROW.isoformat()}) for i in range(3)]
    add_leads(engine, settings, campaign, later, START)
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


class Served(ApiProcess):
    """A filled campaign behind ``outdial api`` in a process of its own."""

    def __init__(self, tmp_path: Path, settings: Settings) -> None:
        db_url = f"sqlite:///{tmp_path / 'outdial.db'}"
        upgrade(db_url)
        self.engine = make_engine(db_url)
        settings.callee_hours = None
        self.campaign_id = fill_campaign(self.engine, settings)
        self.key = create_key(self.engine, "page-test", datetime.now(UTC))
        env = {
            **os.environ,
            "OUTDIAL_DATABASE_URL": db_url,
            "OUTDIAL_ACCOUNTS_FILE": str(settings.accounts_file),
            "OUTDIAL_DATA_DIR": str(tmp_path / "var"),
        }
        super().__init__(env, API_PORT, tmp_path / "api.log")


def keep(shot: Path) -> None:
    if target := os.environ.get("OUTDIAL_TEST_SCREENSHOT"):
        shutil.copy(shot, target)


@pytest.mark.slow
def test_campaign_page_renders_counts_outcomes_and_the_chart(tmp_path: Path, settings: Settings) -> None:
    chromium()
    served = Served(tmp_path, settings)
    base, campaign_id = served.base, served.campaign_id
    try:
        listing = dump_dom(f"{base}/ui/campaigns", tmp_path / "profile-list")
        assert "spring reminders" in listing and f"/ui/campaigns/{campaign_id}" in listing

        page = f"{base}/ui/campaigns/{campaign_id}"
        minutes_before = int((datetime.now(UTC) - START).total_seconds() // 60)
        dom = dump_dom(page, tmp_path / "profile-dom")
        minutes_after = int((datetime.now(UTC) - START).total_seconds() // 60)
        states = re.search(r'<table id="states">(.*?)</table>', dom, re.S)
        assert states is not None
        headers = re.findall(r"<th>(\w+)</th>", states.group(1))
        cells = [int(n) for n in re.findall(r"<td[^>]*>(\d+)</td>", states.group(1))]
        counts = dict(zip(headers, cells, strict=True))
        assert counts["accepted"] == 26 and counts["unknown"] == 4 and counts["rejected"] == 5
        assert counts["queued"] == 5 and counts["scheduled"] == 3
        assert sum(counts.values()) == 43
        # Requests the provider answered but whose calls have no outcome yet are not call outcomes.
        assert "35 attempts; without an outcome yet" in dom and "No call has ended yet." in dom
        assert re.search(r"<td>accepted</td><td>30</td>", dom) and re.search(r"<td>rejected</td><td>5</td>", dom)
        points = re.findall(r'<circle class="point" cx="([\d.]+)" cy="([\d.]+)"', dom)
        # One per minute up to now: the eight with calls, the quiet ones since (a stall shows), and
        # the minute still running, drawn apart.
        assert minutes_before <= len(points) <= minutes_after and dom.count('class="partial-point"') == 1
        heights = {float(cy) for _, cy in points}
        assert len(heights) >= 3  # the rate changes, and the line shows it
        assert "35 calls; peak 9.0 calls per minute." in dom  # the busiest minute's real count

        shot = tmp_path / "campaign.png"
        screenshot(page, shot, tmp_path / "profile-shot")
        image = Image.open(shot).convert("RGB")
        # The series is drawn in #1f5fbf: count its pixels inside the chart's area.
        series = sum(1 for r, g, b in image.getdata() if abs(r - 0x1F) < 40 and abs(g - 0x5F) < 40 and b > 150)
        assert series > 500, f"the chart's line is not visible ({series} pixels); see {shot}"
    finally:
        served.stop()


@pytest.mark.slow
def test_an_operator_pauses_reads_why_and_retries_an_unknown_job_from_the_page(
    tmp_path: Path, settings: Settings
) -> None:
    chromium()
    served = Served(tmp_path, settings)
    page = f"{served.base}/ui/campaigns/{served.campaign_id}"
    browser = Browser(tmp_path / "profile-cdp")
    try:
        browser.open(page)
        assert browser.js("document.getElementById('state').textContent") == "active"

        # Pause, with the key typed on the page.
        browser.js(f"document.getElementById('api-key').value = {json.dumps(served.key)}")
        browser.js("document.getElementById('pause').click()")
        browser.wait_for("document.getElementById('message')")
        assert browser.js("document.getElementById('message').textContent") == "campaign paused"
        assert browser.js("document.getElementById('state').textContent") == "paused"
        why = str(browser.js("document.getElementById('why').textContent"))
        assert "Not dialling" in why and "paused on the campaign page by api:page-test" in why
        due_local = str(browser.js("document.getElementById('next-due').textContent"))
        due_utc = str(browser.js("document.getElementById('next-due-utc').textContent"))
        assert (
            due_local == f"{TOMORROW.astimezone(ZoneInfo('America/New_York')):%Y-%m-%d %H:%M} EST in America/New_York"
        )
        assert due_utc == f"{TOMORROW:%Y-%m-%d %H:%M} UTC"

        # A pause without the key does nothing.
        browser.js("document.getElementById('api-key').value = 'odk_wrong'")
        browser.js("document.getElementById('resume').click()")
        browser.wait_for("document.getElementById('message').textContent.includes('API key')")
        assert browser.js("document.getElementById('state').textContent") == "paused"

        # List the unknown jobs.
        browser.js("document.getElementById('filter-state').value = 'unknown'")
        browser.js("document.getElementById('filter-go').click()")
        browser.wait_for("location.search.includes('state=unknown')")
        rows = browser.js("[...document.querySelectorAll('#jobs tr.job')].map(r => r.dataset.state)")
        assert rows == ["unknown"] * 4
        first = int(browser.js("document.querySelector('#jobs tr.job td').textContent"))  # type: ignore[call-overload]

        # Retry the first one.
        browser.js(f"document.getElementById('api-key').value = {json.dumps(served.key)}")
        browser.js("document.querySelector('#jobs tr.job button.retry').click()")
        browser.wait_for("document.getElementById('message')")
        assert browser.js("document.getElementById('message').textContent") == f"retried job {first}"
        assert browser.js("location.search").startswith("?state=unknown")  # the list the operator was on
        assert browser.js("document.querySelectorAll('#jobs tr.job').length") == 3
        with served.engine.connect() as conn:
            job = job_store.get_job(conn, first)
        assert job is not None and job.state == "scheduled"
        assert job.reason.startswith("retried by api:page-test (was unknown")

        shot = tmp_path / "operator.png"
        width, height = browser.screenshot(shot)
        assert width <= PAGE_WIDTH, f"the page is {width} px wide; see {shot}"
        image = Image.open(shot)
        assert image.width == PAGE_WIDTH and image.height == height
        keep(shot)
    finally:
        browser.close()
        served.stop()
