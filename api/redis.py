"""The API's Redis client: short timeouts and one quick retry, so a dead Redis means a fast 503."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from contracts.settings import Settings


def connect(settings: Settings) -> Redis:
    timeout = settings.redis_timeout_seconds
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=64,
        timeout=timeout,  # waiting for a free connection is bounded too
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # One immediate retry reconnects a connection that Redis closed when it restarted. Not
        # after a timeout, which would double the wait for the 503. A re-sent script answers as
        # its first sending did (contracts/scripts.py). The asyncio Retry: redis-py's sync one
        # would wrap the coroutine, not the call, and never retry.
        retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)
