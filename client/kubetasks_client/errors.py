"""The API's error answers as exceptions, one class per error code.

Every error the API sends is JSON `{"error": code, "message": ..., ...}` (api/errors.py on the
server). The classes are grouped by what a caller does about them: `NotFound`, `Conflict`,
`Gone`, and `RetryLater` for the answers that say when to come back (429 and 503, which the
client's opt-in `Retry` waits out). A code this client does not know yet still raises the group
of its status, so catching `NotFound` keeps working when the API adds a kind of 404.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubetasks_client.models import TaskView


class KubetasksError(Exception):
    """An error answer of the API. `code` is its `error` field (None when the answer was not
    the API's JSON, from a proxy say), `details` the body's other fields."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int = 0,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status} {self.code or 'error'}: {self.message}"


class BadRequest(KubetasksError):
    """400 `bad_request`: the body could not be parsed."""


class Unauthorized(KubetasksError):
    """401 `unauthorized`: the API wants an X-API-Key and none was sent."""


class Forbidden(Unauthorized):
    """403 `forbidden`: the X-API-Key sent is not the API's."""


class NotFound(KubetasksError):
    """404: no such thing (`not_found` itself: no such route)."""


class TaskNotFound(NotFound):
    """404 `task_not_found`: no task with this id was submitted."""


class DeadLetterNotFound(NotFound):
    """404 `dead_letter_not_found`: the task is not in the dead-letter list."""


class ScheduleNotFound(NotFound):
    """404 `schedule_not_found`."""


class WorkflowNotFound(NotFound):
    """404 `workflow_not_found`."""


class MethodNotAllowed(KubetasksError):
    """405 `method_not_allowed`."""


class Conflict(KubetasksError):
    """409: the request contradicts what is there."""


class TaskFinished(Conflict):
    """409 `task_finished`: a cancel came after the task succeeded or failed."""


class WorkflowFinished(Conflict):
    """409 `workflow_finished`: a cancel came after the workflow succeeded or failed."""


class ScheduleExists(Conflict):
    """409 `schedule_exists`: the name is taken; `update_schedule` changes that schedule."""


class IdempotencyKeyReused(Conflict):
    """409 `idempotency_key_reused`: the key was used for other work, the task `task_id`."""

    @property
    def task_id(self) -> str:
        return str(self.details.get("task_id", ""))


class Gone(KubetasksError):
    """410: it existed, ended and its record expired."""


class TaskExpired(Gone):
    """410 `task_expired`."""


class WorkflowExpired(Gone):
    """410 `workflow_expired`."""


class BodyTooLarge(KubetasksError):
    """413 `body_too_large`: over the API's KUBETASKS_MAX_BODY_BYTES."""


class InvalidArguments(KubetasksError):
    """422 `invalid_request`: `fields` as the API gives them, each `{"field", "message"}`, the
    field a dotted path such as `args.seconds` or `chain.1.args.a`."""

    @property
    def fields(self) -> list[dict[str, str]]:
        fields: list[dict[str, str]] = self.details.get("fields") or []
        return fields


class RetryLater(KubetasksError):
    """429 or 503: nothing was done, and `retry_after` (seconds, from Retry-After, None when the
    answer had none) says when to try again."""

    @property
    def retry_after(self) -> float | None:
        try:
            return float(self.headers["retry-after"])
        except (KeyError, ValueError):
            return None


class BacklogFull(RetryLater):
    """429 `backlog_full`: the task's queue holds as many waiting tasks as it may."""

    @property
    def queue(self) -> str:
        return str(self.details.get("queue", ""))


class Unavailable(RetryLater):
    """503: the API cannot serve this now."""


class TooManyStreams(Unavailable):
    """503 `too_many_streams`: the API process serves its cap of event streams."""


class RedisUnavailable(Unavailable):
    """503 `redis_unavailable`: the API cannot reach Redis."""


class ServerError(KubetasksError):
    """500 `internal_error`: the API failed; the error is in its log."""


class WaitTimeout(TimeoutError):
    """`wait` reached its timeout before the task ended; `last` is the task as last seen."""

    def __init__(self, task_id: str, timeout: float, last: TaskView | None) -> None:
        state = last.state if last else "unknown"
        super().__init__(f"task {task_id} did not end within {timeout} s (state {state})")
        self.task_id, self.timeout, self.last = task_id, timeout, last


# Every code the API sends (its table in api/errors.py); tests/test_client.py checks the ones
# its OpenAPI document names are all here.
BY_CODE: dict[str, type[KubetasksError]] = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "task_not_found": TaskNotFound,
    "dead_letter_not_found": DeadLetterNotFound,
    "schedule_not_found": ScheduleNotFound,
    "workflow_not_found": WorkflowNotFound,
    "method_not_allowed": MethodNotAllowed,
    "task_finished": TaskFinished,
    "workflow_finished": WorkflowFinished,
    "schedule_exists": ScheduleExists,
    "idempotency_key_reused": IdempotencyKeyReused,
    "task_expired": TaskExpired,
    "workflow_expired": WorkflowExpired,
    "body_too_large": BodyTooLarge,
    "invalid_request": InvalidArguments,
    "backlog_full": BacklogFull,
    "too_many_streams": TooManyStreams,
    "redis_unavailable": RedisUnavailable,
    "internal_error": ServerError,
}
# For codes newer than this client, and answers that are not the API's JSON.
_BY_STATUS: dict[int, type[KubetasksError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    413: BodyTooLarge,
    422: InvalidArguments,
    429: RetryLater,
    500: ServerError,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_from(status: int, headers: Mapping[str, str], body: bytes) -> KubetasksError:
    """The exception for an error answer."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), str):
        text = body.decode(errors="replace").strip()[:200] or f"HTTP {status}"
        return _BY_STATUS.get(status, KubetasksError)(text, status=status, headers=lowered)
    code = parsed.pop("error")
    message = str(parsed.pop("message", ""))
    kind = BY_CODE.get(code) or _BY_STATUS.get(status, KubetasksError)
    return kind(message, code=code, status=status, details=parsed, headers=lowered)
