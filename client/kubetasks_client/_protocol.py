"""What the sync and async clients share, without I/O: each endpoint as a `Call` (the request
and how its answer is read), the configuration from arguments or the environment, and the
retry policy. The clients only send a `Call` and hand back what it reads."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypedDict, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from kubetasks_client.errors import RetryLater, Unavailable, error_from
from kubetasks_client.models import (
    Cancelled,
    CatalogueEntry,
    QueuesView,
    ScheduleList,
    ScheduleView,
    State,
    Submitted,
    TaskArgs,
    TaskPage,
    TaskView,
    WorkflowCancelled,
    WorkflowPage,
    WorkflowSubmitted,
    WorkflowView,
)

URL_VARIABLE = "KUBETASKS_URL"
API_KEY_VARIABLE = "KUBETASKS_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"  # where `make run` serves the API
API_KEY_HEADER = "X-API-Key"
USER_AGENT = "kubetasks-client/0.1.0"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Options:
    """A client's configuration, resolved once."""

    http: dict[str, Any]  # httpx.Client's (or AsyncClient's) arguments
    timeout: float
    retry: Retry | None
    poll_interval: float

    def stream_timeout(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, read=read)


def configure(
    url: str | None,
    api_key: str | None,
    *,
    timeout: float,
    retry: Retry | bool,
    poll_interval: float,
) -> Options:
    """An argument wins over the environment; `retry=True` is the default `Retry()`."""
    headers = {"User-Agent": USER_AGENT}
    key = api_key if api_key is not None else os.environ.get(API_KEY_VARIABLE)
    if key:
        headers[API_KEY_HEADER] = key
    base = (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
    policy = retry if isinstance(retry, Retry) else Retry() if retry else None
    http = {"base_url": base, "headers": headers, "timeout": timeout}
    return Options(http, timeout, policy, poll_interval)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[bytes], T]
    params: dict[str, str | int] | None = None
    json: Any = None
    # Whether sending it again after a 503 is safe: the 503 may come after the write landed
    # (Redis answered too late), and creating twice is not. A 429 is always safe to resend.
    idempotent: bool = True

    def answer(self, status: int, headers: Mapping[str, str], content: bytes) -> T:
        if status >= 400:
            raise error_from(status, headers, content)
        return self.read(content)


def _model(kind: type[M]) -> Callable[[bytes], M]:
    return kind.model_validate_json


def _nothing(_: bytes) -> None:
    return None


_CATALOGUE: TypeAdapter[list[CatalogueEntry]] = TypeAdapter(list[CatalogueEntry])


def _segment(value: str) -> str:
    return quote(value, safe="")


def submit(
    options: Options,
    name: str,
    args: Mapping[str, Any] | None,
    task_args: Mapping[str, Any],
    *,
    queue: str | None,
    priority: int | None,
    countdown: float | None,
    idempotency_key: str | None,
) -> Call[Submitted]:
    """`args` and `task_args` (the keyword arguments) are merged, each name given once."""
    both = set(args or {}) & set(task_args)
    if both:
        raise TypeError(f"task arguments given twice: {', '.join(sorted(both))}")
    if idempotency_key is None and options.retry is not None:
        # A submit sent again after a 503 whose first send did land then answers with the same
        # task instead of queueing it twice.
        idempotency_key = f"kubetasks-client.{uuid.uuid4().hex}"
    body: dict[str, Any] = {"name": name, "args": {**(args or {}), **task_args}}
    given = {
        "queue": queue,
        "priority": priority,
        "countdown": countdown,
        "idempotency_key": idempotency_key,
    }
    body.update((k, v) for k, v in given.items() if v is not None)  # else the API's defaults
    return Call(
        "POST", "/tasks", _model(Submitted), json=body, idempotent=idempotency_key is not None
    )


def task(task_id: str) -> Call[TaskView]:
    return Call("GET", f"/tasks/{_segment(task_id)}", _model(TaskView))


def task_args(task_id: str) -> Call[TaskArgs]:
    return Call("GET", f"/tasks/{_segment(task_id)}/args", _model(TaskArgs))


def events_path(task_id: str) -> str:
    return f"/tasks/{_segment(task_id)}/events"


def cancel(task_id: str) -> Call[Cancelled]:
    return Call("POST", f"/tasks/{_segment(task_id)}/cancel", _model(Cancelled))


def task_page(
    state: State | str | None,
    name: str | None,
    schedule: str | None,
    limit: int,
    cursor: str | None,
) -> Call[TaskPage]:
    given = {"state": state, "name": name, "schedule": schedule, "cursor": cursor}
    params: dict[str, str | int] = {k: str(v) for k, v in given.items() if v is not None}
    params["limit"] = limit
    return Call("GET", "/tasks", _model(TaskPage), params=params)


def queues() -> Call[QueuesView]:
    return Call("GET", "/queues", _model(QueuesView))


def catalogue() -> Call[list[CatalogueEntry]]:
    return Call("GET", "/catalogue", _CATALOGUE.validate_json)


def dead_letters(limit: int) -> Call[TaskPage]:
    return Call("GET", "/deadletters", _model(TaskPage), params={"limit": limit})


def requeue_dead_letter(task_id: str) -> Call[None]:
    # Sent again after it landed, it would be a 404: no longer a dead letter.
    path = f"/deadletters/{_segment(task_id)}/requeue"
    return Call("POST", path, _nothing, idempotent=False)


def discard_dead_letter(task_id: str) -> Call[None]:
    path = f"/deadletters/{_segment(task_id)}"
    return Call("DELETE", path, _nothing, idempotent=False)


def submit_workflow(spec: Mapping[str, Any]) -> Call[WorkflowSubmitted]:
    # No idempotency key for workflows: a retry after a 503 could queue it twice.
    return Call("POST", "/workflows", _model(WorkflowSubmitted), json=spec, idempotent=False)


def workflow(workflow_id: str) -> Call[WorkflowView]:
    return Call("GET", f"/workflows/{_segment(workflow_id)}", _model(WorkflowView))


def workflows(limit: int) -> Call[WorkflowPage]:
    return Call("GET", "/workflows", _model(WorkflowPage), params={"limit": limit})


def cancel_workflow(workflow_id: str) -> Call[WorkflowCancelled]:
    path = f"/workflows/{_segment(workflow_id)}/cancel"
    return Call("POST", path, _model(WorkflowCancelled))


class ScheduleChanges(TypedDict, total=False):
    """A schedule's fields besides its name: all optional when changing one (PATCH), `task` and
    one of `cron` or `interval_seconds` needed when creating one."""

    task: str
    args: dict[str, Any]
    queue: str | None
    priority: int
    cron: str | None
    timezone: str
    interval_seconds: float | None
    paused: bool
    misfire: Literal["skip", "catch_up"]
    catch_up_max: int


def schedules() -> Call[ScheduleList]:
    return Call("GET", "/schedules", _model(ScheduleList))


def schedule(name: str) -> Call[ScheduleView]:
    return Call("GET", f"/schedules/{_segment(name)}", _model(ScheduleView))


def create_schedule(name: str, fields: ScheduleChanges) -> Call[ScheduleView]:
    # Sent again after it landed, it would be a 409 schedule_exists.
    body = {"name": name, **fields}
    return Call("POST", "/schedules", _model(ScheduleView), json=body, idempotent=False)


def update_schedule(name: str, changes: ScheduleChanges) -> Call[ScheduleView]:
    return Call("PATCH", f"/schedules/{_segment(name)}", _model(ScheduleView), json=changes)


def delete_schedule(name: str) -> Call[None]:
    return Call("DELETE", f"/schedules/{_segment(name)}", _nothing, idempotent=False)


@dataclass(frozen=True)
class Retry:
    """Opt-in: send a request again after a 429 or 503 answer, once its Retry-After has passed.

    `attempts` counts every send, the first included; `max_seconds` bounds the time from the
    first send to the last. A 503 is waited out only for requests that are safe to send twice
    (reads, cancels, schedule changes, submits: those get an idempotency key of their own)."""

    attempts: int = 5
    max_seconds: float = 60.0
    default_delay: float = 1.0  # for an answer without Retry-After


@dataclass
class Attempts:
    """One request's attempts under a policy (None: no retries)."""

    policy: Retry | None
    call: Call[Any]
    sent: int = 1
    started: float = field(default_factory=time.monotonic)

    def delay(self, error: RetryLater) -> float:
        """Seconds to wait before the next send; raises `error` when there is to be none."""
        policy = self.policy
        if policy is None or self.sent >= policy.attempts:
            raise error
        if isinstance(error, Unavailable) and not self.call.idempotent:
            raise error
        delay = policy.default_delay if error.retry_after is None else error.retry_after
        if time.monotonic() - self.started + delay > policy.max_seconds:
            raise error
        self.sent += 1
        return delay
