"""outdial's kombu Redis transport: publishing reuses one client per connection pool."""

from __future__ import annotations

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
