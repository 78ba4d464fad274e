"""The floor under an event stream's memory: what an open streaming connection costs a uvicorn
process with no application around it, and with Starlette's StreamingResponse, against which the
API's figure in `python -m bench.live` reads (docs/benchmarks.md, issue 18).

    python -m bench.stream_floor [--streams 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bench.live import open_streams, rss_mib
from devstack.processes import ROOT, http_ok, wait_until

FIRST_EVENT = b"event: task\ndata: {}\n\n"


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    """An event stream with nothing around it: the headers and one event, then the wait for
    the client to leave."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/livez":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": FIRST_EVENT, "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


async def _waiting() -> AsyncIterator[bytes]:
    yield FIRST_EVENT
    never = asyncio.Event()
    while True:
        try:
            async with asyncio.timeout(15):
                await never.wait()
        except TimeoutError:
            yield b": keep-alive\n\n"


async def _stream(_: Request) -> StreamingResponse:
    return StreamingResponse(_waiting(), media_type="text/event-stream")


async def _livez(_: Request) -> PlainTextResponse:
    return PlainTextResponse("")


starlette = Starlette(routes=[Route("/", _stream), Route("/livez", _livez)])


def measure(app: str, streams: int) -> float:
    """KiB of RSS per open stream of `app`, served by uvicorn as the API is (uvloop, httptools)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "uvicorn", f"bench.stream_floor:{app}", "--port", str(port),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(argv, cwd=ROOT)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/livez"), 20, f"{app} to answer")
        time.sleep(1)  # settles after its first answer
        idle = rss_mib(server.pid)

        async def hold() -> float:
            opened = await open_streams(port, ["/"] * streams)
            await asyncio.sleep(2)
            per_stream = (rss_mib(server.pid) - idle) * 1024 / len(opened)
            for stream in opened:
                stream.close()
            return per_stream

        return asyncio.run(hold())
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    options = parser.parse_args()
    for app, label in (("bare", "uvicorn, a bare ASGI app"),
                       ("starlette", "Starlette, StreamingResponse")):  # fmt: skip
        print(f"| {label} | {measure(app, options.streams):.1f} KiB |")


if __name__ == "__main__":
    main()
