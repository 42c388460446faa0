"""``/docs`` and ``/redoc`` render in headless Chromium on a machine with no network: every host
name but this one fails to resolve, yet both pages show the API's operations; everything they
loaded came from this server, and what their bundles would fetch from elsewhere (ReDoc's logo)
the pages' own content security policy stopped before it left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from outdial.store.db import upgrade
from tests.acceptance.browser import NO_NETWORK, ApiProcess, Browser

API_PORT = 18321
# An operation's summary: shown by both pages once they have read /openapi.json and rendered it.
SUMMARY = "Upload a CSV lead list"


@pytest.fixture
def api(tmp_path: Path) -> ApiProcess:
    db_url = f"sqlite:///{tmp_path / 'outdial.db'}"
    upgrade(db_url)
    env = {**os.environ, "OUTDIAL_DATABASE_URL": db_url, "OUTDIAL_DATA_DIR": str(tmp_path / "var")}
    return ApiProcess(env, API_PORT, tmp_path / "api.log")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        # Swagger UI: one block per operation.
        ("/docs", "document.querySelectorAll('.swagger-ui .opblock').length > 10"),
        # ReDoc: one section per operation in its menu.
        ("/redoc", "document.querySelectorAll('[data-item-id*=\"/operation/\"]').length > 10"),
    ],
)
def test_the_docs_render_with_no_network(api: ApiProcess, tmp_path: Path, page: str, rendered: str) -> None:
    browser = Browser(tmp_path / "profile", extra_flags=NO_NETWORK)
    try:
        # The resolver rule is in force: a CDN the page might name cannot be reached.
        browser.open("about:blank")
        unreachable = browser.js("fetch('https://cdn.jsdelivr.net/').then(() => 'reached', () => 'refused')")
        assert unreachable == "refused"

        browser.call("Page.enable")
        browser.call(
            "Page.addScriptToEvaluateOnNewDocument",
            source="window.blocked = []; document.addEventListener("
            "'securitypolicyviolation', e => window.blocked.push(e.blockedURI));",
        )
        url = f"{api.base}{page}"
        browser.open(url)
        browser.wait_for(rendered, timeout=30)
        assert SUMMARY in str(browser.js("document.body.innerText"))
        loaded = browser.js("performance.getEntriesByType('resource').map(e => e.name)")
        assert isinstance(loaded, list) and loaded, loaded
        blocked = browser.js("window.blocked")
        assert isinstance(blocked, list)
        elsewhere = [name for name in loaded if not str(name).startswith(api.base) and name not in blocked]
        assert not elsewhere, f"{page} reached out for {json.dumps(elsewhere)}"
        assert any(str(name).endswith("/openapi.json") for name in loaded), loaded
    finally:
        browser.close()
        api.stop()
