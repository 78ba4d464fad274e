"""Every error leaves the API as JSON with a clear message: never a traceback, never a hang."""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.store import BacklogFull, DeadLetterNotFound, TaskExpired, TaskNotFound
from contracts.settings import Settings

log = logging.getLogger(__name__)

# Redis errors that mean "unreachable", logged without a traceback.
_OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def _field(loc: tuple[int | str, ...]) -> str:
    # Drop FastAPI's location prefix and the union tag: body.generic.args.x -> args.x
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "seed", "generic")]
    return ".".join(parts) or "body"


def render(exc: Exception, settings: Settings) -> JSONResponse:
    """The answer to an exception raised while serving a request; FastAPI's exception handlers
    and the fast lane (api/fastlane.py) both answer through here."""
    retry_after = {"Retry-After": str(settings.retry_after_seconds)}
    match exc:
        case RequestValidationError():
            fields = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
            summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
            return error(422, "invalid_request", summary, fields=fields)
        case HTTPException():
            code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
                exc.status_code, "http_error"
            )
            response = error(exc.status_code, code, str(exc.detail))
            response.headers.update(exc.headers or {})
            return response
        case TaskNotFound():
            return error(404, "task_not_found", f"no task with id {exc.args[0]!r} was submitted")
        case DeadLetterNotFound():
            message = f"task {exc.args[0]!r} is not in the dead-letter list"
            return error(404, "dead_letter_not_found", message)
        case TaskExpired():
            return error(
                410,
                "task_expired",
                f"task {exc.args[0]!r} finished and its record expired "
                f"(records are kept {settings.record_ttl_seconds} s after a task ends)",
            )
        case BacklogFull():
            metrics.REJECTIONS.labels(reason="backlog_full").inc()
            response = error(429, "backlog_full", str(exc), queue=exc.queue)
            response.headers.update(retry_after)
            return response
        case redis.exceptions.RedisError():
            if not isinstance(exc, _OUTAGE):
                log.exception("unexpected Redis error")
            metrics.REJECTIONS.labels(reason="redis_unavailable").inc()
            response = error(503, "redis_unavailable", f"the task store is unreachable: {exc}")
            response.headers.update(retry_after)
            return response
    log.exception("unhandled error")
    return error(500, "internal_error", "the server failed; the error is in its log")


HANDLED = (
    RequestValidationError,
    HTTPException,
    TaskNotFound,
    DeadLetterNotFound,
    TaskExpired,
    BacklogFull,
    redis.exceptions.RedisError,
    Exception,
)


def install(app: FastAPI, settings: Settings) -> None:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return render(exc, settings)

    for kind in HANDLED:
        app.add_exception_handler(kind, handler)


class BodyLimit:
    """Refuses request bodies over the limit (413) before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> HTTPException:
        metrics.REJECTIONS.labels(reason="too_large").inc()
        return HTTPException(413, f"request bodies are limited to {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            exc = self._too_large()
            response = error(413, "body_too_large", str(exc.detail))
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives; the route's
            # body parsing turns this HTTPException into the same 413.
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)
