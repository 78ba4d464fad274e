"""Apps for `uvicorn --factory` in tests/test_fastlane.py: create_app's app without the fast lane,
or with one change the lane was not written for. Each runs in its own uvicorn process."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.middleware.gzip import GZipMiddleware

from api import deps
from api.exceptions import TaskNotFound
from api.fastlane import FastLane
from api.main import create_app
from api.routes import tasks
from api.store import TaskStore


def without_the_lane() -> FastAPI:
    app = create_app()
    lane: object = FastLane
    app.user_middleware = [m for m in app.user_middleware if m.cls is not lane]
    return app


def with_another_middleware() -> FastAPI:
    app = create_app()
    app.add_middleware(GZipMiddleware)
    return app


async def audit() -> None:
    """A dependency FastAPI would run and the lane would not."""


def with_another_dependency_on_the_read_route() -> FastAPI:
    read = next(
        r for r in tasks.router.routes if isinstance(r, APIRoute) and r.endpoint is tasks.get_task
    )
    read.dependencies.append(Depends(audit))  # as `@router.get(..., dependencies=[...])` would
    return create_app()


def with_the_store_overridden() -> FastAPI:
    app = create_app()

    async def store_of_another_kind() -> TaskStore:
        store: TaskStore = app.state.store
        return store

    app.dependency_overrides[deps.get_store] = store_of_another_kind
    return app


def with_another_exception_handler() -> FastAPI:
    app = create_app()

    async def quietly(request: Request, exc: Exception) -> Response:
        return Response(status_code=404)

    app.add_exception_handler(TaskNotFound, quietly)
    return app
