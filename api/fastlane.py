"""The two hot routes, submit and status read, answered beneath FastAPI's routing.

Through FastAPI a status read costs about 310 µs of CPU on the benchmark machine, most of it
in the middleware stack, routing and dependency solving (docs/benchmarks.md). The lane
answers only the requests it can vouch for: the API key matches and a submit's body is JSON that
validates against the same `SubmitBody` model. Anything else (no or a wrong key, a bad body, a
CORS request, every other route) goes on to FastAPI untouched, so the rules and their error
answers live in one place. Errors raised by the work itself (not found, backlog full, Redis
down) are answered by `errors.render`, like FastAPI's handlers do.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.deps import API_KEY_HEADER, key_accepted
from api.routes import tasks
from api.schemas import SubmitBody
from api.store import TaskStore
from contracts.settings import Settings

_SUBMIT: TypeAdapter[Any] = TypeAdapter(SubmitBody)


def _route(endpoint: Any) -> APIRoute:
    return next(
        r for r in tasks.router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint
    )


_READ_ROUTE, _SUBMIT_ROUTE = _route(tasks.get_task), _route(tasks.submit)
_TASK_PREFIX = _READ_ROUTE.path.removesuffix("{task_id}")  # "/tasks/"


class FastLane:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = _route_path(scope), scope["method"]
            if method == "GET" and path.startswith(_TASK_PREFIX):
                task_id = path.removeprefix(_TASK_PREFIX)
                headers = Headers(scope=scope)
                # A read with a body is BodyLimit's to judge.
                bodiless = "content-length" not in headers and "transfer-encoding" not in headers
                if task_id and "/" not in task_id and bodiless and self._vouched(headers):
                    scope["route"] = _READ_ROUTE  # as routing would: metrics label by it
                    await self._answer(scope, receive, send, tasks.read(_store(scope), task_id))
                    return
            elif method == "POST" and path == _SUBMIT_ROUTE.path:
                headers = Headers(scope=scope)
                if self._vouched(headers):
                    await self._submit(scope, receive, send, headers)
                    return
        await self.app(scope, receive, send)

    def _vouched(self, headers: Headers) -> bool:
        """Only the first of repeated headers counts, as in FastAPI's own reading of them."""
        if self.settings.cors_origins and "origin" in headers:
            return False
        return key_accepted(self.settings, headers.get(API_KEY_HEADER))

    async def _submit(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        declared = headers.get("content-length", "")
        if (
            headers.get("content-type") != "application/json"
            or not declared.isdigit()
            or int(declared) > self.settings.max_body_bytes
        ):
            await self.app(scope, receive, send)
            return
        raw = await _read_body(receive)
        if raw is None:  # the client left: FastAPI answers that (400), so metrics agree
            await self.app(scope, _disconnected, send)
            return
        try:
            body = _SUBMIT.validate_python(orjson.loads(raw))
        except ValueError:  # orjson's JSONDecodeError and pydantic's ValidationError
            await self.app(scope, _replay(raw, receive), send)
            return
        scope["route"] = _SUBMIT_ROUTE
        work = tasks.accept(_store(scope), body, scope)
        await self._answer(scope, receive, send, work)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, work: Coroutine[Any, Any, Response]
    ) -> None:
        try:
            response = await work
        except Exception as exc:  # answered as FastAPI's handlers answer it
            response = errors.render(exc, self.settings)
        await response(scope, receive, send)


def _store(scope: Scope) -> TaskStore:
    store: TaskStore = scope["app"].state.store
    return store


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands FastAPI the body the lane already read."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
