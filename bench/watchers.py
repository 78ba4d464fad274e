"""Idle watchers: what N open event streams cost the API process and Redis while nothing
changes. A throwaway stack (Redis and one API process, no worker) with tasks that wait for a
countdown; N streams (`GET /tasks/{id}/events`, spread over the tasks) are opened from raw
asyncio connections, each held once its first event arrived; then the API's RSS and Redis's
commands per second over a quiet window.

    python -m bench.watchers [--watchers 10000] [--tasks 1000] [--quiet 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import redis

from devstack.processes import Process, Stack

CONNECT_BATCH = 50  # streams started at once


def rss_mib(process: Process) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def watch(port: int, task_id: str) -> asyncio.StreamWriter:
    """A stream held open after its first event (the task's view)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /tasks/{task_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream refused: {status!r} {await reader.read(2000)!r}")
    while not (await reader.readline()).startswith(b"event: task"):
        pass
    return writer


async def open_all(port: int, ids: list[str], count: int) -> list[asyncio.StreamWriter]:
    held: list[asyncio.StreamWriter] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = range(start, min(count, start + CONNECT_BATCH))
        held += await asyncio.gather(*(watch(port, ids[n % len(ids)]) for n in batch))
    return held


def commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds measured idle")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        stack = Stack(workdir=Path(workdir))
        try:
            stack.start_redis()
            api = stack.start_api()
            port = int(stack.api_url.rsplit(":", 1)[1])
            with httpx.Client(base_url=stack.api_url, timeout=30) as http:
                ids = [
                    http.post(
                        "/tasks", json={"name": "sleep", "args": {"seconds": 0}, "countdown": 3600}
                    ).json()["task_id"]
                    for _ in range(options.tasks)
                ]
            time.sleep(2)  # the API settles after the submits (its catalogue refresh and all)
            idle = rss_mib(api)
            client = redis.Redis.from_url(stack.redis_url)

            async def measure() -> None:
                opened = time.monotonic()
                held = await open_all(port, ids, options.watchers)
                opened = time.monotonic() - opened
                await asyncio.sleep(1)
                before = commands(client)
                await asyncio.sleep(options.quiet)
                per_second = (commands(client) - before - 1) / options.quiet  # less the INFO
                watching = rss_mib(api)
                print(f"| watchers | {len(held):,} on {len(ids):,} tasks |")
                print(f"| opened in | {opened:.1f} s |")
                print(f"| API RSS before / with them | {idle:.1f} / {watching:.1f} MiB |")
                print(f"| API RSS per watcher | {(watching - idle) * 1024 / len(held):.1f} KiB |")
                print(f"| Redis commands/s while idle | {per_second:.2f} |")
                for writer in held:
                    writer.close()

            asyncio.run(measure())
        finally:
            stack.stop_all(timeout=15)


if __name__ == "__main__":
    main()
