"""The asyncio client: `Client`'s calls (kubetasks_client._protocol builds and reads them for
both), sent with httpx.AsyncClient."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Mapping
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


class AsyncTask:
    """A task by its id, with the client's calls on it."""

    def __init__(self, client: AsyncClient, task_id: str, created: bool | None = None) -> None:
        self.client = client
        self.id = task_id
        # From the submit's answer: False when an idempotency key matched an earlier task.
        self.created = created

    async def get(self) -> TaskView:
        return await self.client.get(self.id)

    async def wait(
        self, timeout: float | None = None, *, on_update: OnUpdate | None = None
    ) -> TaskView:
        return await self.client.wait(self.id, timeout, on_update=on_update)

    async def cancel(self) -> Cancelled:
        return await self.client.cancel(self.id)

    def __repr__(self) -> str:
        return f"AsyncTask({self.id!r})"


class AsyncClient:
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
        self.http = httpx.AsyncClient(**self.options.http)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send one call, again after a 429 or 503 as the retry policy allows."""
        attempts = calls.Attempts(self.options.retry, call)
        while True:
            response = await self.http.request(
                call.method, call.path, params=call.params, json=call.json
            )
            try:
                return call.answer(response.status_code, response.headers, response.content)
            except RetryLater as error:
                await asyncio.sleep(attempts.delay(error))

    async def submit(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        countdown: float | None = None,
        idempotency_key: str | None = None,
        **task_args: Any,
    ) -> AsyncTask:
        """Queue the task `name` with `args` and/or keyword arguments; its handle."""
        submitted = await self.send(
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
        return AsyncTask(self, submitted.task_id, submitted.created)

    def task(self, task_id: str) -> AsyncTask:
        """The handle of a task submitted before (no request is made)."""
        return AsyncTask(self, task_id)

    async def get(self, task_id: str) -> TaskView:
        return await self.send(calls.task(task_id))

    async def args(self, task_id: str) -> TaskArgs:
        """The arguments it was submitted with (not in its view); None once it succeeded."""
        return await self.send(calls.task_args(task_id))

    async def wait(
        self, task_id: str, timeout: float | None = None, *, on_update: OnUpdate | None = None
    ) -> TaskView:
        """The task once it ended (SUCCESS, FAILURE or REVOKED), followed on its event stream,
        or by polling when the stream cannot be had; `on_update` gets each new view on the way.
        WaitTimeout after `timeout` seconds."""
        follower = Follower(task_id, timeout, on_update, self.options.poll_interval)
        stream_timeout = self.options.stream_timeout(follower.read_timeout())
        try:
            async with self.http.stream(
                "GET", follower.stream_path, timeout=stream_timeout
            ) as response:
                body = b"" if response.status_code == 200 else await response.aread()
                follower.opened(response.status_code, response.headers, body)
                async for line in response.aiter_lines():
                    if ended := follower.line(line):
                        return ended
        except (httpx.HTTPError, KubetasksError) as error:
            follower.broke(error)
        while not (ended := follower.seen(await self.send(follower.poll))):
            await asyncio.sleep(follower.pause())
        return ended

    async def cancel(self, task_id: str) -> Cancelled:
        return await self.send(calls.cancel(task_id))

    async def list(
        self,
        state: State | str | None = None,
        name: str | None = None,
        *,
        schedule: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[TaskView]:
        """Every task in `state` and of `name` (or every run of `schedule`), newest first,
        fetched a page at a time as the iteration goes."""
        cursor: str | None = None
        while True:
            page = await self.send(calls.task_page(state, name, schedule, page_size, cursor))
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def queues(self) -> QueuesView:
        return await self.send(calls.queues())

    async def catalogue(self) -> builtins.list[CatalogueEntry]:
        return await self.send(calls.catalogue())

    async def dead_letters(self, limit: int = 50) -> builtins.list[TaskView]:
        return (await self.send(calls.dead_letters(limit))).items

    async def requeue_dead_letter(self, task_id: str) -> AsyncTask:
        await self.send(calls.requeue_dead_letter(task_id))
        return AsyncTask(self, task_id)

    async def discard_dead_letter(self, task_id: str) -> None:
        await self.send(calls.discard_dead_letter(task_id))

    async def submit_workflow(self, spec: Mapping[str, Any]) -> WorkflowSubmitted:
        """`spec` as POST /workflows takes it: `{"chain": [...]}`, `{"group": [...]}` or
        `{"chord": [...], "then": step}`, nested; a step is `{"task", "args", ...}`."""
        return await self.send(calls.submit_workflow(spec))

    async def get_workflow(self, workflow_id: str) -> WorkflowView:
        return await self.send(calls.workflow(workflow_id))

    async def list_workflows(self, limit: int = 20) -> builtins.list[WorkflowView]:
        return (await self.send(calls.workflows(limit))).items

    async def cancel_workflow(self, workflow_id: str) -> WorkflowCancelled:
        return await self.send(calls.cancel_workflow(workflow_id))

    async def list_schedules(self) -> builtins.list[ScheduleView]:
        return (await self.send(calls.schedules())).items

    async def get_schedule(self, name: str) -> ScheduleView:
        return await self.send(calls.schedule(name))

    async def create_schedule(self, name: str, **fields: Unpack[ScheduleChanges]) -> ScheduleView:
        return await self.send(calls.create_schedule(name, fields))

    async def update_schedule(self, name: str, **changes: Unpack[ScheduleChanges]) -> ScheduleView:
        return await self.send(calls.update_schedule(name, changes))

    async def delete_schedule(self, name: str) -> None:
        await self.send(calls.delete_schedule(name))
