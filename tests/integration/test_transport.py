"""outdial's kombu Redis transport: publishing reuses one client per connection pool."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection

from outdial.worker.transport import TRANSPORT


def test_publishing_reuses_one_client_per_pool_and_a_new_pool_gets_a_new_one(redis_url: str) -> None:
    with Connection(redis_url, transport=TRANSPORT) as connection:
        channel = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        assert first.connection_pool is channel.pool
        # The consuming side keeps kombu's own clients (its pool for BRPOP).
        assert channel._create_client(asynchronous=True) is not first
        channel._disconnect_pools()  # what kombu does when the connection is lost
        renewed = channel._create_client()
        assert renewed is not first and renewed.connection_pool is channel.pool
        assert renewed.ping()


def test_a_closed_channel_fails_with_a_connection_error_not_an_attribute_error(redis_url: str) -> None:
    """A task thread acking on a channel closed by a lost connection: the worker must see a connection
    error (it logs "Couldn't ack" and goes on), never the AttributeError that stopped it."""
    with Connection(redis_url, transport=TRANSPORT) as connection:
        channel = connection.default_channel
        assert channel.connection is not None
        channel.close()
        with pytest.raises(redis.exceptions.ConnectionError):
            channel._create_client()
        assert redis.exceptions.ConnectionError in connection.connection_errors
