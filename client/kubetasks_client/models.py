"""The API's answers, typed. Written apart from the service's own schemas (a client installs
without the service); tests/test_client.py compares each with the API's OpenAPI document, so a
field renamed, added or removed there fails the suite rather than a user.

Unknown fields are ignored (pydantic's default): an older client reads a newer API's answers.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel


class State(StrEnum):
    """Celery's state names, as the API answers them."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @property
    def ended(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED})


class Submitted(BaseModel):
    task_id: str
    state: State
    created: bool  # False when an idempotency key matched an earlier task


class Progress(BaseModel):
    current: float
    total: float
    message: str = ""


class TaskError(BaseModel):
    type: str
    message: str
    traceback: str | None = None


class TaskView(BaseModel):
    task_id: str
    name: str
    queue: str
    priority: int
    state: State
    progress: Progress | None
    submitted_at: datetime
    due_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    retries: int
    worker: str | None
    worker_pid: int | None
    result: Any = None
    error: TaskError | None
    schedule: str | None = None
    workflow: str | None = None
    task_status: State
    task_result: Any = None


class TaskArgs(BaseModel):
    task_id: str
    args: dict[str, Any] | None  # None once it succeeded: a success keeps its result only


class TaskPage(BaseModel):
    items: list[TaskView]
    next_cursor: str | None


class Cancelled(BaseModel):
    task_id: str
    state: State
    outcome: Literal["revoked"]


class QueueView(BaseModel):
    name: str
    ready: int
    in_flight: int
    backlog: int
    oldest_age_seconds: float
    workers: int
    max_backlog: int


class QueuesView(BaseModel):
    queues: list[QueueView]
    delayed: int
    dead_letters: int
    workers: int


class CatalogueEntry(BaseModel):
    name: str
    queue: str
    description: str
    time_limit_seconds: int
    max_retries: int
    args_schema: dict[str, Any]


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[dict[str, str]] | None = None


class ScheduleView(BaseModel):
    name: str
    task: str
    args: dict[str, Any] = {}
    queue: str
    priority: int = 0
    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: float | None = None
    paused: bool = False
    misfire: Literal["skip", "catch_up"] = "skip"
    catch_up_max: int = 10
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_task_id: str | None


class ScheduleList(BaseModel):
    items: list[ScheduleView]


class WorkflowStep(BaseModel):
    step: int
    task_id: str
    name: str
    state: State
    after: list[int]


class WorkflowView(BaseModel):
    workflow_id: str
    state: State
    submitted_at: datetime
    finished_at: datetime | None
    counts: dict[State, int]
    steps: list[WorkflowStep]
    result: Any = None


class WorkflowSubmitted(BaseModel):
    workflow_id: str
    state: State
    task_ids: list[str]


class WorkflowPage(BaseModel):
    items: list[WorkflowView]


class WorkflowCancelled(BaseModel):
    workflow_id: str
    state: State
    outcome: Literal["revoked"]
