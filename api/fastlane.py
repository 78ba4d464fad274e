"""The two hot routes, submit and status read, answered beneath FastAPI's routing.

Through FastAPI a status read costs about 310 µs of CPU on the benchmark machine, most of it
in the middleware stack, routing and dependency solving (docs/benchmarks.md). The lane is the
innermost of the app's middleware, so the body limit, CORS and the HTTP metrics apply to its
answers as they do to FastAPI's. It matches requests with the app's own routes (root path and
all, as routing does) and answers only those it can vouch for: the API key matches and a submit's
body is JSON that validates against the same `SubmitBody` model. Anything else (no or a wrong
key, a body that is not plain JSON or does not validate, every other route) goes on to FastAPI
untouched, so the rules and their error answers live in one place. Errors raised by the work
itself (not found, backlog full, Redis down) are answered by `errors.render`, like FastAPI's
handlers do.

The lane does the work of FastAPI's dependency solving and exception handling for its routes,
so at start-up it checks that the app is the one it was written for: the routes' dependencies
and parameters, the middleware around it, the exception handlers. When they differ the app does
not start, rather than skip a new dependency or middleware silently on the hottest routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import WebSocketRequestValidationError
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from prometheus_client import Counter
from pydantic import TypeAdapter
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import deps, errors, metrics
from api.exceptions import BodyTooLarge
from api.routes import tasks
from api.schemas import SubmitBody
from api.store import TaskStore
from contracts.settings import Settings

_SUBMIT: TypeAdapter[Any] = TypeAdapter(SubmitBody)

# What FastAPI solves for each hot route, depth first: the endpoint's parameters, then each
# dependency's. The lane does the dependencies' work itself: the API key in `_vouched` (the same
# `key_accepted`, the first X-API-Key header as `api_key_header` reads it), the store in `_store`.
_KEY_AND_STORE = [(deps.require_api_key, ()), (deps.api_key_header, ()), (deps.get_store, ())]
_WRITTEN_FOR: dict[Callable[..., Any], list[tuple[object, tuple[str, ...]]]] = {
    tasks.submit: [(tasks.submit, ("body body",)), *_KEY_AND_STORE],
    tasks.get_task: [(tasks.get_task, ("path task_id",)), *_KEY_AND_STORE],
}
# The middleware the lane may run beneath. It reads whole bodies, on the strength of BodyLimit.
_OUTER_MIDDLEWARE = {metrics.HttpMetrics, errors.BodyLimit, CORSMiddleware}

Handler = Callable[[Scope, Receive, Send, Headers], Awaitable[None]]


class LaneMismatch(Exception):
    """The app is not the one the fast lane was written for."""


@dataclass(frozen=True)
class _HotRoute:
    matches: Callable[[Scope], tuple[Match, Scope]]
    route: APIRoute  # what routing puts in scope["route"], where the metrics find the template
    answer: Handler
    answered: Counter


class FastLane:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # Filled at start-up (the lifespan): until then every request goes to FastAPI.
        self._routes: dict[str, _HotRoute] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hot = self._routes.get(scope["method"])
            if hot is not None:
                match, child_scope = hot.matches(scope)
                if match is Match.FULL:
                    headers = Headers(scope=scope)
                    if self._vouched(headers):
                        scope.update(child_scope)  # as routing would
                        scope["route"] = hot.route
                        await hot.answer(scope, receive, send, headers)
                        return
        elif scope["type"] == "lifespan":
            await self._start(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _vouched(self, headers: Headers) -> bool:
        """Only the first of repeated headers counts, as in FastAPI's own reading of them."""
        return deps.key_accepted(self.settings, headers.get(deps.API_KEY_HEADER))

    async def _read(self, scope: Scope, receive: Receive, send: Send, _: Headers) -> None:
        work = tasks.read(_store(scope), scope["path_params"]["task_id"])
        await self._send(scope, receive, send, await self._done(work))

    async def _submit(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        if headers.get("content-type") != "application/json":
            await self.app(scope, receive, send)
            return
        try:
            raw = await _read_body(receive)
        except BodyTooLarge as exc:  # BodyLimit counts a chunked body as it arrives
            await self._send(scope, receive, send, errors.render(exc, self.settings))
            return
        if raw is None:  # the client left: FastAPI answers that (400), so metrics agree
            await self.app(scope, _disconnected, send)
            return
        try:
            body = _SUBMIT.validate_python(orjson.loads(raw))
        except ValueError:  # orjson's JSONDecodeError and pydantic's ValidationError
            await self.app(scope, _replay(raw, receive), send)
            return
        work = tasks.accept(_store(scope), body, scope)
        await self._send(scope, receive, send, await self._done(work))

    async def _done(self, work: Awaitable[Response]) -> Response:
        try:
            return await work
        except Exception as exc:  # answered as FastAPI's handlers answer it
            return errors.render(exc, self.settings)

    async def _send(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        self._routes[scope["method"]].answered.inc()
        await response(scope, receive, send)

    async def _start(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._routes = self._hot_routes(scope["app"])
        except LaneMismatch as exc:
            # Raised instead, uvicorn would take the app for one without a lifespan and serve.
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await self.app(scope, receive, send)

    def _hot_routes(self, app: FastAPI) -> dict[str, _HotRoute]:
        """The lane's routes as the app serves them, by method."""
        problems = _stack_problems(app)
        served: dict[Any, RouteContext] = {}
        for candidate in iter_route_contexts(app.routes):
            served.setdefault(candidate.endpoint, candidate)  # the first serves, as in routing
        answers: dict[Callable[..., Any], Handler] = {
            tasks.submit: self._submit,
            tasks.get_task: self._read,
        }
        routes = {}
        for endpoint, answer in answers.items():
            context = served.get(endpoint)
            route = context and context.original_route
            if context is None or not isinstance(route, APIRoute):
                problems.append(f"no API route serves {endpoint.__qualname__}")
                continue
            problems += _route_problems(app, context, route, _WRITTEN_FOR[endpoint])
            hot = _HotRoute(context.matches, route, answer, metrics.FAST_LANE.labels(route.path))
            routes.update(dict.fromkeys(route.methods or (), hot))
        if problems:
            raise LaneMismatch(
                "the fast lane (api/fastlane.py) was not written for this app: "
                + "; ".join(problems)
                + ". Teach the lane the change (and tests/test_fastlane.py), or let FastAPI "
                "answer the route."
            )
        return routes


def _stack_problems(app: FastAPI) -> list[str]:
    """How the middleware and exception handlers differ from those the lane was written for."""
    problems = []
    middleware: list[object] = [m.cls for m in app.user_middleware]
    if middleware[-1:] != [FastLane]:
        problems.append("it is not the innermost middleware")
    around = [m for m in middleware if m is not FastLane]
    if errors.BodyLimit not in around or not set(around) <= _OUTER_MIDDLEWARE:
        problems.append(
            f"the middleware around it are {_names(around)}, it was written for BodyLimit and "
            f"any of {_names(list(_OUTER_MIDDLEWARE - {errors.BodyLimit}))}"
        )
    handlers = [
        kind
        for kind, handler in app.exception_handlers.items()
        if handler is not errors.handle and kind is not WebSocketRequestValidationError
    ]
    if handlers:
        problems.append(f"exceptions {_names(handlers)} have handlers other than errors.handle")
    return problems


def _route_problems(
    app: FastAPI,
    context: RouteContext,
    route: APIRoute,
    expected: list[tuple[object, tuple[str, ...]]],
) -> list[str]:
    """How FastAPI's work for a hot route differs from the work the lane does for it."""
    problems = []
    where = f"{'/'.join(sorted(route.methods or ()))} {context.path}"
    solved = list(_solved(context.dependant))
    if solved != expected:
        problems.append(
            f"FastAPI solves {_described(solved)} for {where}, the lane was written for "
            f"{_described(expected)}"
        )
    overridden = [call for call, _ in solved if call in app.dependency_overrides]
    if overridden:
        problems.append(f"{where} has overridden dependencies {_names(overridden)}")
    return problems


def _solved(dependant: Dependant) -> Iterator[tuple[object, tuple[str, ...]]]:
    """What FastAPI solves for a route, depth first: each callable with its parameters."""
    parameters = (
        ("path", dependant.path_params),
        ("query", dependant.query_params),
        ("header", dependant.header_params),
        ("cookie", dependant.cookie_params),
        ("body", dependant.body_params),
    )
    yield dependant.call, tuple(f"{kind} {f.name}" for kind, fields in parameters for f in fields)
    for dependency in dependant.dependencies:
        yield from _solved(dependency)


def _names(things: list[Any]) -> str:
    return ", ".join(sorted(getattr(t, "__qualname__", type(t).__qualname__) for t in things))


def _described(solved: list[tuple[object, tuple[str, ...]]]) -> str:
    return "; ".join(f"{_names([call])}({', '.join(params)})" for call, params in solved)


def _store(scope: Scope) -> TaskStore:
    store: TaskStore = scope["app"].state.store
    return store


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
