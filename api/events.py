"""Server-Sent Events for a view that changes until it ends (a task, a workflow): the view on
every change, polled, with keep-alive comments while nothing changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.exceptions import TaskExpired, TaskNotFound, WorkflowExpired, WorkflowNotFound
from contracts.records import TERMINAL_STATES, State

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0

View = TypeVar("View", bound=BaseModel)
_GONE = (TaskNotFound, TaskExpired, WorkflowNotFound, WorkflowExpired)


def stream(
    event: str, first: View, read: Callable[[], Awaitable[View]], state: Callable[[View], State]
) -> StreamingResponse:
    """`first` (read before answering, so that a missing one is a 404), then each new view
    `read` returns, as `event` events, until `state` is terminal or the record is gone."""

    async def events() -> AsyncIterator[bytes]:
        view, last, quiet = first, b"", 0.0
        while True:
            data = view.model_dump_json().encode()
            if data != last:
                yield f"event: {event}\ndata: ".encode() + data + b"\n\n"
                last, quiet = data, 0.0
            if state(view) in TERMINAL_STATES:
                return
            if quiet >= KEEPALIVE_SECONDS:
                yield b": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            try:
                view = await read()
            except _GONE:
                return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
