"""Python client of the kubetasks API (docs/client.md): `Client`, or `AsyncClient` for asyncio.

from kubetasks_client import Client

with Client() as client:  # $KUBETASKS_URL and $KUBETASKS_API_KEY, or arguments
    task = client.submit("sleep", seconds=3)
    print(task.wait(timeout=60).state)
"""

from kubetasks_client._protocol import Retry, ScheduleChanges
from kubetasks_client.aio import AsyncClient, AsyncTask
from kubetasks_client.client import Client, Task
from kubetasks_client.errors import (
    BacklogFull,
    BadRequest,
    BodyTooLarge,
    Conflict,
    DeadLetterNotFound,
    Forbidden,
    Gone,
    IdempotencyKeyReused,
    InvalidArguments,
    KubetasksError,
    MethodNotAllowed,
    NotFound,
    RedisUnavailable,
    RetryLater,
    ScheduleExists,
    ScheduleNotFound,
    ServerError,
    TaskExpired,
    TaskFinished,
    TaskNotFound,
    TooManyStreams,
    Unauthorized,
    Unavailable,
    WaitTimeout,
    WorkflowExpired,
    WorkflowFinished,
    WorkflowNotFound,
)
from kubetasks_client.models import State, TaskView

__all__ = [
    "AsyncClient",
    "AsyncTask",
    "BacklogFull",
    "BadRequest",
    "BodyTooLarge",
    "Client",
    "Conflict",
    "DeadLetterNotFound",
    "Forbidden",
    "Gone",
    "IdempotencyKeyReused",
    "InvalidArguments",
    "KubetasksError",
    "MethodNotAllowed",
    "NotFound",
    "RedisUnavailable",
    "Retry",
    "RetryLater",
    "ScheduleChanges",
    "ScheduleExists",
    "ScheduleNotFound",
    "ServerError",
    "State",
    "Task",
    "TaskExpired",
    "TaskFinished",
    "TaskNotFound",
    "TaskView",
    "TooManyStreams",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
    "WorkflowExpired",
    "WorkflowFinished",
    "WorkflowNotFound",
]
