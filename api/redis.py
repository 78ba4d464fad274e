"""The API's Redis client: short timeouts and one quick retry, so a dead Redis means a fast 503."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from contracts.settings import Settings


def _closed_is_a_connection_error(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """`base`, but a write to a socket Redis already closed is a ConnectionError under uvloop
    too. uvloop raises RuntimeError ("the handler is closed", MagicStack/uvloop#506) where
    asyncio's own loop raises an OSError that redis-py turns into a ConnectionError; so a
    Redis restart answered requests with 500s instead of reconnecting (the soak found it)."""

    class Connection(base):  # type: ignore[valid-type,misc]
        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> None:
            try:
                await super().send_packed_command(command, check_health)
            except RuntimeError as exc:  # redis-py has closed the connection by now
                raise ConnectionError(f"Redis closed the connection: {exc}") from exc

    Connection.__name__ = Connection.__qualname__ = base.__name__
    return Connection


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
    # Set after from_url, which picks the class for the URL's scheme (TLS, unix socket).
    pool.connection_class = _closed_is_a_connection_error(pool.connection_class)
    return Redis(connection_pool=pool)
