"""The synchronous client (`AsyncClient` in kubetasks_client.aio is its asyncio twin: the same
calls, from kubetasks_client._protocol, sent with httpx.AsyncClient)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from kubetasks_client import _protocol as calls
from kubetasks_client._follow import Follower, OnUpdate
from kubetasks_client._protocol import Call, Retry, ScheduleChanges
from kubetasks_client.errors import KubetasksError, RetryLater
from kubetasks_client.models import (
    Cancelled,
    CatalogueEntry,
    QueuesView,
    ScheduleView,
    State,
    TaskArgs,
    TaskView,
    WorkflowCancelled,
    WorkflowSubmitted,
    WorkflowView,
)

T = TypeVar("T")


class Task:
    """A task by its id, with the client's calls on it."""

    def __init__(self, client: Client, task_id: str, created: bool | None = None) -> None:
        self.client = client
        self.id = task_id
        # From the submit's answer: False when an idempotency key matched an earlier task.
        self.created = created

    def get(self) -> TaskView:
        return self.client.get(self.id)

    def wait(self, timeout: float | None = None, *, on_update: OnUpdate | None = None) -> TaskView:
        return self.client.wait(self.id, timeout, on_update=on_update)

    def cancel(self) -> Cancelled:
        return self.client.cancel(self.id)

    def __repr__(self) -> str:
        return f"Task({self.id!r})"


class Client:
    """The kubetasks API at `url` (else $KUBETASKS_URL, else http://127.0.0.1:8000), with
    `api_key` (else $KUBETASKS_API_KEY) sent as X-API-Key. Error answers raise the classes of
    kubetasks_client.errors; `retry=True` (or a `Retry`) waits out 429 and 503 answers."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: Retry | bool = False,
        poll_interval: float = 0.5,
    ) -> None:
        self.options = calls.configure(
            url, api_key, timeout=timeout, retry=retry, poll_interval=poll_interval
        )
        self.http = httpx.Client(**self.options.http)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Send one call, again after a 429 or 503 as the retry policy allows."""
        attempts = calls.Attempts(self.options.retry, call)
        while True:
            response = self.http.request(call.method, call.path, params=call.params, json=call.json)
            try:
                return call.answer(response.status_code, response.headers, response.content)
            except RetryLater as error:
                time.sleep(attempts.delay(error))

    def submit(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        countdown: float | None = None,
        idempotency_key: str | None = None,
        **task_args: Any,
    ) -> Task:
        """Queue the task `name` with `args` and/or keyword arguments; its handle."""
        submitted = self.send(
            calls.submit(
                self.options,
                name,
                args,
                task_args,
                queue=queue,
                priority=priority,
                countdown=countdown,
                idempotency_key=idempotency_key,
            )
        )
        return Task(self, submitted.task_id, submitted.created)

    def task(self, task_id: str) -> Task:
        """The handle of a task submitted before (no request is made)."""
        return Task(self, task_id)

    def get(self, task_id: str) -> TaskView:
        return self.send(calls.task(task_id))

    def args(self, task_id: str) -> TaskArgs:
        """The arguments it was submitted with (not in its view); None once it succeeded."""
        return self.send(calls.task_args(task_id))

    def wait(
        self, task_id: str, timeout: float | None = None, *, on_update: OnUpdate | None = None
    ) -> TaskView:
        """The task once it ended (SUCCESS, FAILURE or REVOKED), followed on its event stream,
        or by polling when the stream cannot be had; `on_update` gets each new view on the way.
        WaitTimeout after `timeout` seconds."""
        follower = Follower(task_id, timeout, on_update, self.options.poll_interval)
        stream_timeout = self.options.stream_timeout(follower.read_timeout())
        try:
            with self.http.stream("GET", follower.stream_path, timeout=stream_timeout) as response:
                body = b"" if response.status_code == 200 else response.read()
                follower.opened(response.status_code, response.headers, body)
                for line in response.iter_lines():
                    if ended := follower.line(line):
                        return ended
        except (httpx.HTTPError, KubetasksError) as error:
            follower.broke(error)
        while not (ended := follower.seen(self.send(follower.poll))):
            time.sleep(follower.pause())
        return ended

    def cancel(self, task_id: str) -> Cancelled:
        return self.send(calls.cancel(task_id))

    def list(
        self,
        state: State | str | None = None,
        name: str | None = None,
        *,
        schedule: str | None = None,
        page_size: int = 100,
    ) -> Iterator[TaskView]:
        """Every task in `state` and of `name` (or every run of `schedule`), newest first,
        fetched a page at a time as the iteration goes."""
        cursor: str | None = None
        while True:
            page = self.send(calls.task_page(state, name, schedule, page_size, cursor))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def queues(self) -> QueuesView:
        return self.send(calls.queues())

    def catalogue(self) -> builtins.list[CatalogueEntry]:
        return self.send(calls.catalogue())

    def dead_letters(self, limit: int = 50) -> builtins.list[TaskView]:
        return self.send(calls.dead_letters(limit)).items

    def requeue_dead_letter(self, task_id: str) -> Task:
        self.send(calls.requeue_dead_letter(task_id))
        return Task(self, task_id)

    def discard_dead_letter(self, task_id: str) -> None:
        self.send(calls.discard_dead_letter(task_id))

    def submit_workflow(self, spec: Mapping[str, Any]) -> WorkflowSubmitted:
        """`spec` as POST /workflows takes it: `{"chain": [...]}`, `{"group": [...]}` or
        `{"chord": [...], "then": step}`, nested; a step is `{"task", "args", ...}`."""
        return self.send(calls.submit_workflow(spec))

    def get_workflow(self, workflow_id: str) -> WorkflowView:
        return self.send(calls.workflow(workflow_id))

    def list_workflows(self, limit: int = 20) -> builtins.list[WorkflowView]:
        return self.send(calls.workflows(limit)).items

    def cancel_workflow(self, workflow_id: str) -> WorkflowCancelled:
        return self.send(calls.cancel_workflow(workflow_id))

    def list_schedules(self) -> builtins.list[ScheduleView]:
        return self.send(calls.schedules()).items

    def get_schedule(self, name: str) -> ScheduleView:
        return self.send(calls.schedule(name))

    def create_schedule(self, name: str, **fields: Unpack[ScheduleChanges]) -> ScheduleView:
        return self.send(calls.create_schedule(name, fields))

    def update_schedule(self, name: str, **changes: Unpack[ScheduleChanges]) -> ScheduleView:
        return self.send(calls.update_schedule(name, changes))

    def delete_schedule(self, name: str) -> None:
        self.send(calls.delete_schedule(name))
