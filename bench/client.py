"""A minimal keep-alive HTTP/1.1 client on asyncio streams.

Cheaper per request than httpx, so the bench process steals little CPU from the API and the
worker on a 2-core machine. Only what the harness needs: fixed requests, Content-Length bodies.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

HOST = "127.0.0.1"


def raw_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _post_many(port: int, path: str, body: bytes, n: int, concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    remaining = n
    raw = raw_request("POST", path, body)

    async def one_connection() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while remaining > 0:
                remaining -= 1
                status, _ = await _exchange(reader, writer, raw)
                statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    return statuses


def post_many(port: int, path: str, body: bytes, n: int, concurrency: int = 32) -> Counter[int]:
    """POST the same body n times over `concurrency` keep-alive connections; status counts."""
    return asyncio.run(_post_many(port, path, body, n, concurrency))


async def _timed(targets: list[tuple[int, list[str]]], timeout: float) -> list[list[float]]:
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[list[float]] = [[] for _ in targets]
    try:
        for port, _ in targets:
            connections.append(await asyncio.open_connection(HOST, port))
        for i in range(max(len(paths) for _, paths in targets)):
            for k in range(len(targets)):
                turn = (i + k) % len(targets)  # each target goes first in turn
                paths = targets[turn][1]
                if i >= len(paths):
                    continue
                reader, writer = connections[turn]
                start = time.perf_counter()
                status, body = await asyncio.wait_for(
                    _exchange(reader, writer, raw_request("GET", paths[i])), timeout
                )
                latencies[turn].append(time.perf_counter() - start)
                if status != 200:
                    raise RuntimeError(f"GET {paths[i]} answered {status}: {body[:300]!r}")
    finally:
        for _, writer in connections:
            writer.close()
    return latencies


def timed_gets(port: int, paths: list[str], timeout: float = 30) -> list[float]:
    """GET each path in turn on one connection (no overlap); per-request seconds."""
    return asyncio.run(_timed([(port, paths)], timeout))[0]


def timed_gets_interleaved(
    targets: list[tuple[int, list[str]]], timeout: float = 30
) -> list[list[float]]:
    """Like `timed_gets` for several servers, one request to each in turn: every server meets
    the same machine load, request by request. Per-request seconds, per target."""
    return asyncio.run(_timed(targets, timeout))


def one(
    port: int, method: str, path: str, body: bytes = b"", timeout: float = 10
) -> tuple[int, bytes]:
    """One request on a connection of its own: the status and the body."""

    async def once() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            return await asyncio.wait_for(
                _exchange(reader, writer, raw_request(method, path, body)), timeout
            )
        finally:
            writer.close()

    return asyncio.run(once())


def get(port: int, path: str, timeout: float = 10) -> bytes:
    status, body = one(port, "GET", path, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
    return body
