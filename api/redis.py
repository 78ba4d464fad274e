"""The API's Redis client: short timeouts and one quick retry, so a dead Redis means a fast 503."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from contracts.settings import Settings


def connect(settings: Settings) -> Redis:
    timeout = settings.redis_timeout_seconds
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=64,
        timeout=timeout,  # waiting for a free connection is bounded too
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # One immediate retry reconnects a connection that Redis closed when it restarted.
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)
