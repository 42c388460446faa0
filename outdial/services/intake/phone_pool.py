"""Phone validation spread over the cores, results in submission order.

The first chunk is validated in this process, so small files never pay for
starting workers; from the second chunk on, a process pool (one worker per
core) takes the chunks while this process goes on reading the file.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from outdial.services.intake.phones import normalise_many

Validated = list[tuple[str, tuple[str, ...]] | str]


def worker_count() -> int:
    return max(1, os.cpu_count() or 1)


class PhonePool:
    def __init__(self, region: str | None, workers: int | None = None) -> None:
        self._region = region
        self._workers = workers or worker_count()
        self._pool: ProcessPoolExecutor | None = None
        self._submitted = 0

    def submit(self, raws: Sequence[str]) -> Future[Validated]:
        self._submitted += 1
        if self._submitted == 1 or self._workers == 1:
            done: Future[Validated] = Future()
            done.set_result(normalise_many(raws, self._region))
            return done
        if self._pool is None:
            # forkserver: workers are forked from a clean server process, never from this
            # one, which may hold database connections and threads (the API's uploads).
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["outdial.services.intake.phones"])
            self._pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=context)
        return self._pool.submit(normalise_many, list(raws), self._region)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PhonePool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
