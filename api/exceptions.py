"""What goes wrong while serving a request, raised where it is found; api/errors.py's table
says how each is answered (status, error code, headers)."""

from __future__ import annotations

from starlette.exceptions import HTTPException


class TaskNotFound(Exception):
    """No task with this id was ever submitted (or its tombstone is gone too)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


class TaskExpired(Exception):
    """The task existed, but its record expired."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


class TaskAlreadyEnded(Exception):
    """A cancel came after the task succeeded or failed."""

    def __init__(self, task_id: str, state: str) -> None:
        super().__init__(task_id, state)
        self.task_id, self.state = task_id, state


class IdempotencyKeyReused(Exception):
    """The idempotency key was used for another task, or the same task with other arguments."""

    def __init__(self, key: str, task_id: str) -> None:
        super().__init__(key, task_id)
        self.key, self.task_id = key, task_id


class DeadLetterNotFound(Exception):
    """The task is not in the dead-letter list (never was, or was requeued or discarded)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


class ScheduleNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class ScheduleExists(Exception):
    """POST /schedules with the name of an existing schedule (PATCH changes one)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class WorkflowNotFound(Exception):
    """No workflow with this id was submitted (or its tombstone is gone too)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id


class WorkflowExpired(Exception):
    """The workflow existed, but it ended and its record expired."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id


class WorkflowAlreadyEnded(Exception):
    """A cancel came after the workflow succeeded or failed."""

    def __init__(self, workflow_id: str, state: str) -> None:
        super().__init__(workflow_id, state)
        self.workflow_id, self.state = workflow_id, state


class BacklogFull(Exception):
    def __init__(self, queue: str, ready: int, limit: int) -> None:
        super().__init__(f"queue {queue!r} holds {ready} waiting tasks (limit {limit})")
        self.queue, self.ready, self.limit = queue, ready, limit


class TooManyStreams(Exception):
    """This API process serves as many event streams as it may (KUBETASKS_EVENTS_MAX_STREAMS)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this API process serves its limit of {limit} event streams")
        self.limit = limit


class Unauthorized(Exception):
    """An API key is configured and the request sends none."""


class Forbidden(Exception):
    """The request's API key is not the configured one."""


class RedisUnavailable(Exception):
    """The deep readiness check (`/readyz?deep=1`) could not reach Redis."""


class BodyTooLarge(HTTPException):
    """The request body is over KUBETASKS_MAX_BODY_BYTES.

    An HTTPException because it can be raised while FastAPI reads a body, and FastAPI turns any
    other exception from there into a 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request bodies are limited to {max_bytes} bytes")
