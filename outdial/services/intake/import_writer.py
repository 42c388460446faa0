"""Writes an import's batches in one transaction, on a thread of its own.

The database works on one batch while the reading thread parses the next
(the driver waits on the server without holding the GIL). On PostgreSQL
everything is one transaction: an import that fails half-way, for whatever
reason, leaves nothing behind. SQLite has a single writer, and a transaction
held for a whole import locks out every webhook and dispatch meanwhile
("database is locked"), so there each batch commits on its own: an import that
fails half-way keeps the batches before the failure, and importing the file
again adds the rest (a campaign never holds a number twice).
"""

from __future__ import annotations

import logging
import queue
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine

from outdial import logs
from outdial.store import AnyRow
from outdial.store import campaigns as campaign_store
from outdial.store import lead_import as store
from outdial.store.lead_import import AdmissionRow, BatchRow, WritePath

log = logging.getLogger("outdial.import")


@dataclass
class Batch:
    rows: list[BatchRow]
    admissions: list[AdmissionRow] = field(default_factory=list)  # new since the last batch


_DONE = object()
_ABORT = object()


class ImportWriter:
    """``put`` batches, then ``commit`` (or ``abort``); counts are read after ``commit``."""

    def __init__(self, engine: Engine, campaign: AnyRow, now: datetime, depth: int = 2) -> None:
        self._engine = engine
        self._campaign = campaign
        self._now = now
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._admissions: dict[int, AdmissionRow] = {}
        self.accepted = 0
        self.suppressed = 0
        self.write_path: WritePath | None = None  # PostgreSQL's, once its transaction has begun
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="outdial-import-writer", daemon=True)
        self._thread.start()

    def put(self, batch: Batch) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(batch)

    def commit(self) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self._queue.put(_ABORT)
        self._thread.join()

    def _run(self) -> None:
        try:
            # Closing the connection rolls back whatever is not committed.
            with self._engine.connect() as conn:
                postgres = conn.dialect.name == "postgresql"
                # SQLite: no transaction between batches, so the write lock is free while the next is read.
                transaction = conn.begin() if postgres else None
                if postgres:
                    self.write_path = store.pg_begin(conn, self._campaign.id)
                    log.info(
                        "import writes %s foreign-key checks",
                        "without" if self.write_path is WritePath.UNCHECKED else "with",
                        extra=logs.fields(campaign_id=self._campaign.id, write_path=str(self.write_path)),
                    )
                while True:
                    item = self._queue.get()
                    if item is _DONE and self.accepted:  # new jobs: a completed campaign has work again
                        with conn.begin() if transaction is None else nullcontext():
                            campaign_store.reopen(conn, self._now, self._campaign.id)
                    if item is _DONE or item is _ABORT:
                        if transaction is not None:
                            transaction.commit() if item is _DONE else transaction.rollback()
                        return
                    assert isinstance(item, Batch)
                    if transaction is None:
                        with conn.begin():
                            self._write(conn, item, postgres)
                    else:
                        self._write(conn, item, postgres)
        except BaseException as exc:  # handed to the reading thread, which raises it
            self.error = exc
            self._drain()

    def _write(self, conn: Connection, batch: Batch, postgres: bool) -> None:
        if postgres:
            store.pg_add_admissions(conn, batch.admissions)
            result = store.pg_write_batch(conn, self._campaign, batch.rows, self._now)
        else:
            self._admissions.update((a.id, a) for a in batch.admissions)
            result = store.sqlite_write_batch(conn, self._campaign, batch.rows, self._admissions, self._now)
        self.accepted += result.accepted
        self.suppressed += result.suppressed

    def _drain(self) -> None:
        """After a failure, take what the reader still puts, so it never blocks."""
        while True:
            item = self._queue.get()
            if item is _DONE or item is _ABORT:
                return
