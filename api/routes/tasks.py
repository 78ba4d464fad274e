"""Submit, read, list, cancel and follow tasks."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncGenerator, Awaitable
from typing import Annotated, Any

import orjson
import redis.exceptions
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.types import Scope

from api import events, metrics
from api.catalogue import FIELD_REQUIRED, Location
from api.deps import AUTHORIZED_RAISES, Authorized, StoreDep
from api.errors import invalid, responses
from api.exceptions import (
    BacklogFull,
    BodyTooLarge,
    IdempotencyKeyReused,
    TaskAlreadyEnded,
    TaskExpired,
    TaskNotFound,
    TooManyStreams,
)
from api.schemas import (
    Cancelled,
    SeedSubmit,
    SubmitBody,
    Submitted,
    TaskArgs,
    TaskPage,
    TaskSubmit,
    TaskView,
)
from api.store import TaskStore
from contracts import records
from contracts.catalogue import SEED_TASK, SEED_TASK_TYPES, TaskSpec
from contracts.records import TERMINAL_STATES, State

# Every route here takes parameters (FastAPI would document its own 422 shape otherwise).
router = APIRouter(
    prefix="/tasks",
    tags=["tasks"],
    dependencies=[Authorized],
    responses=responses(*AUTHORIZED_RAISES, RequestValidationError, redis.exceptions.RedisError),
)

MAX_TASK_ID_LENGTH = 64


def _json(body: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize once with pydantic; a returned model would be validated again by FastAPI."""
    return Response(body.model_dump_json(), status, headers, media_type="application/json")


async def _known(store: TaskStore, name: str, at: Location) -> TaskSpec:
    spec = await store.catalogue.find(name)
    if spec is None:
        known = (
            ", ".join(await store.catalogue.tasks())
            or "none yet (no worker has published its tasks)"
        )
        raise invalid((at, f"unknown task {name!r}; known: {known}"))
    return spec


async def checked_task(
    store: TaskStore,
    name: str,
    args: dict[str, Any],
    queue: str | None,
    *,
    at: Location = ("body",),
    field: str = "name",
    filled: str | None = None,
) -> tuple[TaskSpec, str]:
    """The task's spec and the queue its work goes to, once `args` and `queue` check out against
    the catalogue (RequestValidationError naming `field`, `args.<field>` or `queue` under `at`
    else). `filled` names an argument an earlier workflow step fills in: it may be missing."""
    spec = await _known(store, name, (*at, field))
    problems = [
        (where, why)
        for where, why in store.catalogue.problems(spec, args)
        if not (filled and where == (filled,) and why == FIELD_REQUIRED)
    ]
    if problems:
        raise invalid(*(((*at, "args", *where), why) for where, why in problems))
    queue = queue or spec.queue
    queues = await store.catalogue.queues()
    if queue not in queues:
        raise invalid(((*at, "queue"), f"unknown queue {queue!r}; known: {', '.join(queues)}"))
    return spec, queue


@router.post(
    "",
    status_code=202,
    response_model=Submitted,
    responses=responses(400, BodyTooLarge, IdempotencyKeyReused, BacklogFull),
    summary='Submit a task (or the seed\'s {"type": N})',
)
async def submit(
    body: Annotated[SubmitBody, Body()],
    store: StoreDep,
    request: Request,
) -> Response:
    return await accept(store, body, request.scope)


async def accept(store: TaskStore, body: SeedSubmit | TaskSubmit, scope: Scope) -> Response:
    """Queue a validated body; the 202 answer. Checks against the catalogue raise
    RequestValidationError before anything is written."""
    if isinstance(body, SeedSubmit):
        spec = await _known(store, SEED_TASK, ("body", "name"))
        args: dict[str, Any] = {"seconds": SEED_TASK_TYPES[body.type], "note": ""}
        queue, priority, countdown, key = spec.queue, 0, 0.0, None
    else:
        args = body.args
        spec, queue = await checked_task(store, body.name, args, body.queue)
        priority, countdown, key = body.priority, body.countdown, body.idempotency_key
    submitted = await store.submit(
        spec, args, queue=queue, priority=priority, countdown=countdown, idempotency_key=key
    )
    state = State.PENDING
    if submitted.created:
        metrics.SUBMITTED.labels(spec.name, queue).inc()
    else:
        state = State((await store.get(submitted.task_id))[records.Field.STATE])
    location = f"{scope.get('root_path', '')}/tasks/{submitted.task_id}"
    answer = Submitted(task_id=submitted.task_id, state=state, created=submitted.created)
    return _json(answer, 202, {"Location": location})


def _encode_cursor(cursor: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(f"{cursor[0]}:{cursor[1]}".encode()).decode()


_CURSOR = re.compile(r"(\d{1,16}):(\d{1,6})")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        match = _CURSOR.fullmatch(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, binascii.Error):
        match = None
    if match is None:
        raise invalid((("query", "cursor"), "not a cursor this API returned"))
    return match.group(1), int(match.group(2))


@router.get("", response_model=TaskPage, summary="List tasks, newest first")
async def list_tasks(
    store: StoreDep,
    state: State | None = None,
    name: str | None = None,
    schedule: Annotated[str | None, Query(description="Runs of this schedule only.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> TaskPage:
    if name is not None and await store.catalogue.find(name) is None:
        raise invalid((("query", "name"), f"unknown task {name!r}"))
    if schedule is not None and (name or state):
        raise invalid(
            (("query", "schedule"), "lists a schedule's runs alone, not with name or state")
        )
    index = records.schedule_index(schedule) if schedule else records.listing_index(name, state)
    page = await store.list(
        index,
        limit=limit,
        cursor=_decode_cursor(cursor) if cursor else None,
    )
    return TaskPage(
        items=[
            TaskView.from_record(i, r, tracebacks=store.settings.show_tracebacks)
            for i, r in page.items
        ],
        next_cursor=_encode_cursor(page.next_cursor) if page.next_cursor else None,
    )


def _record(store: TaskStore, task_id: str) -> Awaitable[dict[str, str]]:
    """The read of the task's record (a plain function: the status read is a hot path, and an
    extra coroutine would cost it a frame)."""
    if len(task_id) > MAX_TASK_ID_LENGTH:
        raise TaskNotFound(task_id[:MAX_TASK_ID_LENGTH] + "...")
    return store.get(task_id)


async def _view(store: TaskStore, task_id: str) -> TaskView:
    record = await _record(store, task_id)
    return TaskView.from_record(task_id, record, tracebacks=store.settings.show_tracebacks)


_MISSING = (TaskNotFound, TaskExpired)


@router.get(
    "/{task_id}", response_model=TaskView, responses=responses(*_MISSING), summary="Read a task"
)
async def get_task(task_id: str, store: StoreDep) -> Response:
    return await read(store, task_id)


async def read(store: TaskStore, task_id: str) -> Response:
    """The 200 answer with the task's view."""
    return _json(await _view(store, task_id))


# Left out of the task view: an argument may be large (an image to thumbnail), and the view is
# read on every poll, listed by the page and pushed on every change.
@router.get(
    "/{task_id}/args",
    response_model=TaskArgs,
    responses=responses(*_MISSING),
    summary="Read a task's arguments",
)
async def get_task_args(task_id: str, store: StoreDep) -> Response:
    args = (await _record(store, task_id)).get(records.Field.ARGS)
    return _json(TaskArgs(task_id=task_id, args=orjson.loads(args) if args else None))


_CANCEL_RAISES = responses(*_MISSING, TaskAlreadyEnded)


@router.post(
    "/{task_id}/cancel",
    response_model=Cancelled,
    responses=_CANCEL_RAISES,
    summary="Cancel a task",
)
@router.delete(
    "/{task_id}", response_model=Cancelled, responses=_CANCEL_RAISES, summary="Cancel a task"
)
async def cancel_task(task_id: str, store: StoreDep) -> Cancelled:
    """A waiting task will never run; a running one stops at its next progress report.

    Celery's `revoke(terminate=True)` is not used: it marks the pool process, and if that
    process outlives the signal, the next task it runs is acknowledged as revoked when it
    ends, which loses that task. Cancelling a task that is already revoked answers the same
    200 (a repeated DELETE changes nothing); one that succeeded or failed is a 409.
    """
    outcome, before = await store.cancel(task_id)
    if outcome == "terminal":
        raise TaskAlreadyEnded(task_id, str(before))
    return Cancelled(task_id=task_id, state=State.REVOKED, outcome="revoked")


@router.get(
    "/{task_id}/events",
    responses={
        **responses(*_MISSING, TooManyStreams),
        200: {"content": {"text/event-stream": {}}},
    },
    summary="Server-Sent Events: the task view on every change, until it ends",
)
async def task_events(task_id: str, store: StoreDep) -> events.EventStream:
    await _view(store, task_id)  # 404/410 before streaming
    return await events.sse(store.events, follow_tasks(store, [task_id]))


def follow_tasks(
    store: TaskStore, ids: list[str] | None, state: str | None = None, name: str | None = None
) -> AsyncGenerator[bytes]:
    """`task` events of `ids` until each ended, or of every task in `state` and of `name`."""
    tracebacks = store.settings.show_tracebacks

    async def read(task_id: str) -> dict[str, str] | None:
        try:
            return await store.get(task_id)
        except (TaskNotFound, TaskExpired):
            return None

    def render(task_id: str, record: dict[str, str]) -> bytes:
        return (
            TaskView.from_record(task_id, record, tracebacks=tracebacks).model_dump_json().encode()
        )

    return events.follow(
        store.events,
        ids,
        read=read,
        render=render,
        ended=lambda r: r[records.Field.STATE] in TERMINAL_STATES,
        wanted=lambda r: (
            (state is None or r[records.Field.STATE] == state)
            and (name is None or r[records.Field.NAME] == name)
        ),
    )
