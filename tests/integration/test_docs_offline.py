"""``/docs`` and ``/redoc`` render with no network: their HTML references only this server's own
assets, and those are served from the package; plus ``outdial --version`` and the worker's
``-n``/``-Q`` passed through to Celery."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from outdial import __version__
from outdial.api.app import create_app
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize(("page", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_the_docs_pages_use_only_packaged_assets(settings: Settings, engine: Engine, page: str, asset: str) -> None:
    client = TestClient(create_app(settings, engine, load_accounts(settings.accounts_file)))
    html = client.get(page)
    assert html.status_code == 200
    refs = REFERENCE.findall(html.text)
    assert any(ref.endswith(asset) for ref in refs), refs
    for ref in refs:
        assert ref.startswith("/"), f"{page} loads {ref} from elsewhere"
        served = client.get(ref)
        assert served.status_code == 200 and len(served.content) > 100, ref
    assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text
    # What the bundles would fetch from elsewhere is stopped by the browser before it leaves.
    policy = html.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert client.get("/openapi.json").status_code == 200


def test_version() -> None:
    from outdial.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"outdial {__version__}"


def test_worker_name_and_queues_reach_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    from outdial.cli import app
    from outdial.worker.app import app as celery_app

    seen: list[list[str]] = []

    def start(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr(celery_app, "start", start)
    result = CliRunner().invoke(app, ["worker", "-n", "dial1@%h", "-Q", "outdial.a,outdial.b", "-c", "4"])
    assert result.exit_code == 0, result.output
    argv = seen[0]
    assert argv[argv.index("-n") + 1] == "dial1@%h"
    assert argv[argv.index("-Q") + 1] == "outdial.a,outdial.b"
    assert "--concurrency=4" in argv
