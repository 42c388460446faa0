"""kombu's Redis transport, with the fix that keeps workers alive through a Redis restart, and one
client per pool for publishing (see ``Channel._create_client``).

The bug (kombu 5.7.0, celery 5.7.0; reproduced by ``tests/integration/test_worker_redis_restart.py``):
when a worker with late acks loses its broker connection while it holds unacked messages,
Celery's consumer first calls ``Connection.collect()``, which detaches the transport from its
``Connection`` (``transport.client = None``) but can leave the default channel open; then it
calls ``connection.close()``, which closes that channel. Closing it gives the unacked messages
back (``QoS.restore_unacked``), which needs a new connection pool, whose parameters are read
from ``transport.client`` — now ``None``. The ``AttributeError`` is not a connection error, so
nothing catches it: "Unrecoverable error", the worker stops, and every job it would have taken
waits for the scheduler's lease.

The fix: each channel remembers the connection it was opened for, and builds a late pool from
that when the transport has already been detached. The restore then does what kombu meant it to
do: it gives the messages back if Redis answers, or fails with a connection error, which the
consumer ignores before it reconnects (the messages then stay in the unacked hash until
``visibility_timeout``, and the scheduler's queued lease sends their jobs again well before).
The pool made for that last restore is closed with the channel.

Used through Celery's ``broker_transport`` setting (see :mod:`outdial.worker.app`). Drop it once a
kombu release reads the connection parameters safely after ``collect()``.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    # The client kombu publishes through (see _create_client), and the pool it was made for.
    _publishing_client: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        # kombu's Connection that opened this channel; it outlives the transport's reference to it.
        self._opened_for = self.connection.client

    def _create_client(self, asynchronous: bool = False) -> Any:
        """One client per connection pool for publishing, where kombu builds a new one for every message.

        Building a ``redis.Redis`` (its table of response callbacks) cost more CPU than the publish
        itself: a fifth of the scheduler's time, and every task event of a worker. A client only
        lends out its pool's connections, one per command, so threads may share it; a new pool
        (after a reconnect) gets a new client.
        """
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool
        client = self._publishing_client
        if client is None or client.connection_pool is not pool:
            client = self._publishing_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None:
            # Closed when the broker connection was lost, while a task thread still acks on it: a
            # connection error, which the worker logs ("Couldn't ack") and survives; the message
            # stays unacked and is delivered again. An AttributeError here stopped the worker.
            raise redis.exceptions.ConnectionError("the broker channel is closed: its connection was lost")
        if transport.client is not None:
            return super()._connparams(asynchronous)  # type: ignore[no-untyped-call,no-any-return]
        # Detached by Connection.collect(): read the parameters from the connection we were opened for.
        transport.client = self._opened_for
        try:
            return super()._connparams(asynchronous)  # type: ignore[no-untyped-call,no-any-return]
        finally:
            transport.client = None

    def close(self) -> None:
        super().close()  # type: ignore[no-untyped-call]
        # Giving the unacked messages back may have opened a pool after kombu closed the others.
        self._disconnect_pools()  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel


# Celery's broker_transport value that selects this transport.
TRANSPORT = f"{__name__}:Transport"
