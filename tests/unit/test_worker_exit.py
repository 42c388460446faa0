"""``outdial worker`` exits with the Celery worker's own status: a worker that stopped on an
"Unrecoverable error" must not look like a clean shutdown to whatever supervises it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from outdial.cli import app as cli
from outdial.worker.app import app as celery_app
from outdial.worker.app import broker_transport
from outdial.worker.transport import TRANSPORT


@pytest.mark.parametrize("celery_status", [0, 1, 2])
def test_worker_command_exits_with_the_celery_worker_status(
    monkeypatch: pytest.MonkeyPatch, celery_status: int
) -> None:
    seen: list[list[str]] = []

    def start(argv: list[str]) -> int:
        seen.append(argv)
        return celery_status

    monkeypatch.setattr(celery_app, "start", start)
    result = CliRunner().invoke(cli, ["worker", "--concurrency", "2"])
    assert result.exit_code == celery_status
    assert seen and seen[0][0] == "worker" and "--concurrency=2" in seen[0]


def test_redis_urls_get_the_patched_transport_and_others_keep_kombus() -> None:
    assert broker_transport("redis://127.0.0.1:6379/0") == TRANSPORT
    assert broker_transport("rediss://example.com:6380/0") is None
