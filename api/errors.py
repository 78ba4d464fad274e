"""Every error leaves the API as JSON `{"error", "message", ...}` with a clear message: never a
traceback, never a hang.

One table, `ANSWERS`, says how each exception is answered: status, error code, message, headers.
FastAPI's exception handlers, the body limit and the fast lane (api/fastlane.py) all answer
through `render`, and the routes' OpenAPI `responses` are generated from the table by
`responses`, so the documentation cannot drift from the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.exceptions import (
    BacklogFull,
    BodyTooLarge,
    DeadLetterNotFound,
    Forbidden,
    IdempotencyKeyReused,
    RedisUnavailable,
    ScheduleExists,
    ScheduleNotFound,
    TaskAlreadyEnded,
    TaskExpired,
    TaskNotFound,
    TooManyStreams,
    Unauthorized,
    WorkflowAlreadyEnded,
    WorkflowExpired,
    WorkflowNotFound,
)
from api.schemas import UNION_TAGS, ErrorBody
from contracts.settings import Settings

log = logging.getLogger(__name__)

# Redis errors that mean "unreachable", logged without a traceback.
_OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    value: Callable[[Settings], str]
    type: str = "string"


RETRY_AFTER = Header(
    "Retry-After",
    "Seconds to wait before trying again (KUBETASKS_RETRY_AFTER_SECONDS).",
    lambda settings: str(settings.retry_after_seconds),
    "integer",
)
WWW_AUTHENTICATE = Header(
    "WWW-Authenticate", "How to authenticate: an API key in X-API-Key.", lambda _: "ApiKey"
)


def _nothing(_: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Answer:
    status: int
    code: str
    when: str  # the OpenAPI description
    message: Callable[[Any, Settings], str]
    headers: tuple[Header, ...] = ()
    details: Callable[[Any], dict[str, Any]] = _nothing
    rejection: str | None = None  # the `reason` of kubetasks_api_rejections_total, if counted

    def render(self, exc: Exception, settings: Settings) -> JSONResponse:
        if self.rejection:
            metrics.REJECTIONS.labels(reason=self.rejection).inc()
        body = {"error": self.code, "message": self.message(exc, settings), **self.details(exc)}
        headers = {h.name: h.value(settings) for h in self.headers}
        return JSONResponse(body, self.status, headers)


def _field(loc: tuple[int | str, ...]) -> str:
    # Drop FastAPI's location prefix and the union tags: body.generic.args.x -> args.x
    parts = [str(p) for p in loc if p not in ("body", "query", "path") and p not in UNION_TAGS]
    return ".".join(parts) or "body"


def _fields(exc: RequestValidationError) -> dict[str, Any]:
    return {"fields": [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]}


def _summary(exc: RequestValidationError, _: Settings) -> str:
    return "; ".join(f"{f['field']}: {f['message']}" for f in _fields(exc)["fields"])


def invalid(*problems: tuple[tuple[int | str, ...], str]) -> RequestValidationError:
    """Problems the request models cannot see (the catalogue, a task's own arguments, the cursor
    format) as (location, message) pairs, the location starting with "body" or "query": answered
    like the models' own."""
    return RequestValidationError(
        [{"loc": loc, "msg": message, "type": "value_error"} for loc, message in problems]
    )


def _text(exc: Exception, _: Settings) -> str:
    return str(exc)


def _detail(exc: HTTPException, _: Settings) -> str:
    return str(exc.detail)


# Keyed by exception class, or by status for the HTTPExceptions Starlette and FastAPI raise.
ANSWERS: dict[type[Exception] | int, Answer] = {
    RequestValidationError: Answer(
        422,
        "invalid_request",
        "the request does not validate; `fields` names each problem",
        _summary,
        details=_fields,
    ),
    Unauthorized: Answer(
        401,
        "unauthorized",
        "an API key is configured and the request has no X-API-Key",
        _text,
        (WWW_AUTHENTICATE,),
        rejection="unauthorized",
    ),
    Forbidden: Answer(
        403,
        "forbidden",
        "X-API-Key is not the configured key",
        _text,
        rejection="unauthorized",
    ),
    TaskNotFound: Answer(
        404,
        "task_not_found",
        "no task with this id was submitted",
        lambda exc, _: f"no task with id {exc.task_id!r} was submitted",
    ),
    DeadLetterNotFound: Answer(
        404,
        "dead_letter_not_found",
        "the task is not in the dead-letter list",
        lambda exc, _: f"task {exc.task_id!r} is not in the dead-letter list",
    ),
    ScheduleNotFound: Answer(
        404,
        "schedule_not_found",
        "no schedule has this name",
        lambda exc, _: f"no schedule is named {exc.name!r}",
    ),
    WorkflowNotFound: Answer(
        404,
        "workflow_not_found",
        "no workflow with this id was submitted",
        lambda exc, _: f"no workflow with id {exc.workflow_id!r} was submitted",
    ),
    TaskAlreadyEnded: Answer(
        409,
        "task_finished",
        "the task already succeeded or failed",
        lambda exc, _: f"task {exc.task_id!r} already ended as {exc.state}",
    ),
    IdempotencyKeyReused: Answer(
        409,
        "idempotency_key_reused",
        "the idempotency key was used for another task or other arguments; `task_id` names it",
        lambda exc, _: (
            f"idempotency key {exc.key!r} was used for task {exc.task_id!r} with another task "
            "name or other arguments; use a new key for new work"
        ),
        details=lambda exc: {"task_id": exc.task_id},
    ),
    WorkflowAlreadyEnded: Answer(
        409,
        "workflow_finished",
        "the workflow already succeeded or failed",
        lambda exc, _: f"workflow {exc.workflow_id!r} already ended as {exc.state}",
    ),
    ScheduleExists: Answer(
        409,
        "schedule_exists",
        "a schedule has this name already; PATCH changes it",
        lambda exc, _: f"a schedule named {exc.name!r} exists; PATCH changes it",
    ),
    TaskExpired: Answer(
        410,
        "task_expired",
        "the task finished and its record expired",
        lambda exc, settings: (
            f"task {exc.task_id!r} finished and its record expired (records are kept "
            f"{settings.record_ttl_seconds} s after a task ends)"
        ),
    ),
    WorkflowExpired: Answer(
        410,
        "workflow_expired",
        "the workflow ended and its record expired",
        lambda exc, settings: (
            f"workflow {exc.workflow_id!r} ended and its record expired (kept "
            f"{settings.record_ttl_seconds} s after its last step ends)"
        ),
    ),
    BodyTooLarge: Answer(
        413,
        "body_too_large",
        "the body is over KUBETASKS_MAX_BODY_BYTES",
        _detail,
        rejection="too_large",
    ),
    BacklogFull: Answer(
        429,
        "backlog_full",
        "the queue holds as many waiting tasks as it may; `queue` names it",
        _text,
        (RETRY_AFTER,),
        details=lambda exc: {"queue": exc.queue},
        rejection="backlog_full",
    ),
    # A failing deep readiness check refuses no client's work: not counted as a rejection.
    TooManyStreams: Answer(
        503,
        "too_many_streams",
        "this API process serves as many event streams as KUBETASKS_EVENTS_MAX_STREAMS allows",
        _text,
        (RETRY_AFTER,),
    ),
    RedisUnavailable: Answer(
        503,
        "redis_unavailable",
        "Redis does not answer",
        lambda exc, _: f"Redis is unreachable: {exc}",
        (RETRY_AFTER,),
    ),
    redis.exceptions.RedisError: Answer(
        503,
        "redis_unavailable",
        "the task store (Redis) does not answer",
        lambda exc, _: f"the task store is unreachable: {exc}",
        (RETRY_AFTER,),
        rejection="redis_unavailable",
    ),
    400: Answer(400, "bad_request", "the body cannot be parsed (not UTF-8, say)", _detail),
    404: Answer(404, "not_found", "no such route or file", _detail),
    405: Answer(405, "method_not_allowed", "the route does not take this method", _detail),
}

_INTERNAL = Answer(
    500,
    "internal_error",
    "the server failed",
    lambda exc, _: "the server failed; the error is in its log",
)


def answer_for(exc: Exception) -> Answer | None:
    """The table's row for the exception's class or its nearest base class in the table, or
    for one of the framework's HTTPExceptions, its status'."""
    row = next((ANSWERS[k] for k in type(exc).__mro__ if k in ANSWERS), None)
    if row is None and isinstance(exc, HTTPException):
        row = ANSWERS.get(exc.status_code)
    return row


def render(exc: Exception, settings: Settings) -> JSONResponse:
    """The answer to an exception raised while serving a request."""
    answer = answer_for(exc)
    if answer is None:
        if isinstance(exc, HTTPException):  # a status the table lacks
            answer = Answer(exc.status_code, "http_error", "", _detail)
        else:
            log.exception("unhandled error")
            answer = _INTERNAL
    elif isinstance(exc, redis.exceptions.RedisError) and not isinstance(exc, _OUTAGE):
        log.exception("unexpected Redis error")
    response = answer.render(exc, settings)
    if isinstance(exc, HTTPException) and exc.headers:  # 405's Allow
        response.headers.update(exc.headers)
    return response


def responses(*raised: type[Exception] | int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route or router that raises these, from the table."""
    by_status: dict[int, list[Answer]] = {}
    for key in raised:
        by_status.setdefault(ANSWERS[key].status, []).append(ANSWERS[key])
    return {
        status: {
            "model": ErrorBody,
            "description": "; ".join(f"`{a.code}`: {a.when}" for a in answers),
            "headers": {
                h.name: {"description": h.description, "schema": {"type": h.type}}
                for a in answers
                for h in a.headers
            },
        }
        for status, answers in by_status.items()
    }


async def handle(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's handler for every exception; api/fastlane.py checks that it is the only one."""
    settings: Settings = request.app.state.settings
    return render(exc, settings)


def install(app: FastAPI) -> None:
    for kind in (*ANSWERS, HTTPException, Exception):
        app.add_exception_handler(kind, handle)


class BodyLimit:
    """Refuses request bodies over the limit (413) before they are read into memory. The fast
    lane runs beneath it and reads whole bodies on the strength of it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await render(BodyTooLarge(limit), self.settings)(scope, receive, send)
            else:  # the server delivers no more than the declared length
                await self.app(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives; whoever reads it
            # (FastAPI's body parsing or the fast lane) answers the exception with the same 413.
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
