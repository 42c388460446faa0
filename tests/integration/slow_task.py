"""A test-only task on the real Celery app: slow enough that a worker holds unacked messages
when its broker goes away. Loaded with ``celery -A outdial.worker.app:app worker -I tests.integration.slow_task``."""

from __future__ import annotations

import time
from pathlib import Path

from outdial.worker.app import app

SLOW_TASK = "outdial.test.sleep_then_mark"


@app.task(name=SLOW_TASK)  # type: ignore[untyped-decorator]
def sleep_then_mark(seconds: float, path: str, mark: str) -> None:
    time.sleep(seconds)
    with Path(path).open("a") as out:
        out.write(mark + "\n")
