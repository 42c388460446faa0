"""One leading scheduler at a time, through a Redis lock with a short lease.

Any number of scheduler processes may run; the one holding the lock ticks,
the others wait to take over. The lease is short, so a killed leader is
replaced within seconds. Leadership only saves work: correctness never
depends on it, because every claim is a conditional update.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid

import redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from outdial import logs

log = logging.getLogger("outdial.scheduler")


class Leadership:
    def __init__(self, client: redis.Redis, key: str = "outdial:scheduler:leader", lease_s: float = 5.0) -> None:
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lock = Lock(client, key, timeout=lease_s, thread_local=False)
        self.leading = False

    def hold(self) -> bool:
        """Take or keep the lead; call more often than the lease. False while another leads."""
        try:
            if self.leading:
                self.lock.reacquire()  # extends the lease to a full term, only if still ours
            else:
                self.leading = self.lock.acquire(blocking=False, token=self.identity)
                if self.leading:
                    log.info("leading the schedulers", extra=logs.fields(reason=self.identity))
        except (LockError, RedisError) as exc:
            if self.leading:
                log.warning("lost the lead: %s", exc)
            self.leading = False
        return self.leading

    def release(self) -> None:
        if self.leading:
            with contextlib.suppress(LockError, RedisError):
                self.lock.release()
            self.leading = False
