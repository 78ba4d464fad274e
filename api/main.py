"""The ASGI app: `uvicorn api.main:app`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import errors
from api.fastlane import FastLane
from api.metrics import HttpMetrics
from api.redis import connect
from api.routes import (
    catalogue,
    deadletters,
    events,
    health,
    queues,
    schedules,
    tasks,
    workflows,
)
from api.store import TaskStore
from contracts.settings import Settings, get_settings

STATIC = Path(__file__).parent / "static"
# The page's own scripts, styles and API calls, images from there or data: URLs (thumbnails),
# nothing inline and nothing else. Sent with the page alone: the JSON routes render no markup,
# and the hot ones (api/fastlane.py) are better off without another header.
PAGE_HEADERS = {
    "Content-Security-Policy": "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings)
        app.state.store = TaskStore(redis, settings)
        # Everything loaded so far lives as long as the process: keep the collector off it,
        # which shortens the pauses that show up as p99 latency.
        gc.collect()
        gc.freeze()
        yield
        await app.state.store.events.close()
        await redis.aclose()

    app = FastAPI(
        title="kubetasks",
        summary="Run long work in the background: submit, follow, cancel.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    for router in (
        tasks.router,
        schedules.router,
        workflows.router,
        events.router,
        queues.router,
        deadletters.router,
        catalogue.router,
    ):
        app.include_router(router)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    # Each one added goes around the ones before: the fast lane is innermost, so everything
    # else applies to its answers too (it checks this at start-up).
    app.add_middleware(FastLane, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(errors.BodyLimit, settings=settings)
    app.add_middleware(HttpMetrics)
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app()
