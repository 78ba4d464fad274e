"""Submit, read, follow and cancel workflows (api/workflows.py plans them)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import redis.exceptions
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from api import events, metrics
from api.deps import AUTHORIZED_RAISES, Authorized, StoreDep
from api.errors import responses
from api.exceptions import (
    BacklogFull,
    BodyTooLarge,
    TooManyStreams,
    WorkflowAlreadyEnded,
    WorkflowExpired,
    WorkflowNotFound,
)
from api.routes.tasks import MAX_TASK_ID_LENGTH, checked_task
from api.schemas import (
    WorkflowCancelled,
    WorkflowNode,
    WorkflowPage,
    WorkflowSubmitted,
    WorkflowView,
)
from api.store import TaskStore
from api.workflows import check_input, plan
from contracts.records import TERMINAL_STATES, State

router = APIRouter(
    prefix="/workflows",
    tags=["workflows"],
    dependencies=[Authorized],
    responses=responses(*AUTHORIZED_RAISES, RequestValidationError, redis.exceptions.RedisError),
)

_MISSING = (WorkflowNotFound, WorkflowExpired)


@router.post(
    "",
    status_code=202,
    response_model=WorkflowSubmitted,
    responses=responses(400, BodyTooLarge, BacklogFull),
    summary="Submit a workflow: a chain, a group or a chord of tasks, nested",
)
async def submit(
    body: Annotated[WorkflowNode, Body()], store: StoreDep, request: Request, response: Response
) -> Any:
    """Every step is checked against the catalogue before anything is queued; the steps that
    wait for none are queued at once, the others as the steps before them succeed."""
    planned = plan(body, store.settings.workflow_max_steps)
    checked = []
    for step in planned.steps:
        t = step.task
        spec, queue = await checked_task(
            store, t.task, t.args, t.queue, at=step.at, field="task", filled=t.input
        )
        check_input(step, spec)
        checked.append((spec, queue))
    workflow_id, task_ids = await store.workflows.submit(planned, checked)
    for spec, queue in checked:
        metrics.SUBMITTED.labels(spec.name, queue).inc()
    root = request.scope.get("root_path", "")
    response.headers["Location"] = f"{root}/workflows/{workflow_id}"
    return WorkflowSubmitted(workflow_id=workflow_id, state=State.PENDING, task_ids=task_ids)


@router.get("", response_model=WorkflowPage, summary="The newest workflows, newest first")
async def list_workflows(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=50)] = 20
) -> WorkflowPage:
    return WorkflowPage(items=await store.workflows.recent(limit))


def _checked_id(workflow_id: str) -> str:
    """An id no submit could have made is not looked up (nor echoed back whole)."""
    if len(workflow_id) > MAX_TASK_ID_LENGTH:
        raise WorkflowNotFound(workflow_id[:MAX_TASK_ID_LENGTH] + "...")
    return workflow_id


async def _view(store: TaskStore, workflow_id: str) -> WorkflowView:
    return await store.workflows.get(_checked_id(workflow_id))


@router.get(
    "/{workflow_id}",
    response_model=WorkflowView,
    responses=responses(*_MISSING),
    summary="A workflow: its state, its steps' states, its result",
)
async def get_workflow(workflow_id: str, store: StoreDep) -> WorkflowView:
    return await _view(store, workflow_id)


@router.get(
    "/{workflow_id}/events",
    responses={
        **responses(*_MISSING, TooManyStreams),
        200: {"content": {"text/event-stream": {}}},
    },
    summary="Server-Sent Events: the workflow view on every change of a step, until it ends",
)
async def workflow_events(workflow_id: str, store: StoreDep) -> events.EventStream:
    first = await _view(store, workflow_id)  # 404/410 before streaming

    async def read() -> bytes | None:
        try:
            return (await _view(store, workflow_id)).model_dump_json().encode()
        except (WorkflowNotFound, WorkflowExpired):
            return None

    def ended(data: bytes) -> bool:
        return orjson.loads(data)["state"] in TERMINAL_STATES

    steps = [step.task_id for step in first.steps]
    body = events.follow_view(store.events, steps, name="workflow", read=read, ended=ended)
    return await events.sse(store.events, body)


_CANCEL_RAISES = responses(*_MISSING, WorkflowAlreadyEnded)


@router.post(
    "/{workflow_id}/cancel",
    response_model=WorkflowCancelled,
    responses=_CANCEL_RAISES,
    summary="Cancel a workflow",
)
@router.delete(
    "/{workflow_id}",
    response_model=WorkflowCancelled,
    responses=_CANCEL_RAISES,
    summary="Cancel a workflow",
)
async def cancel_workflow(workflow_id: str, store: StoreDep) -> WorkflowCancelled:
    """Its waiting steps never run; its running ones stop as a cancelled task does (at their
    next progress report, or within about a second). Cancelling one already revoked answers
    the same 200; one that succeeded or failed is a 409."""
    outcome, before = await store.workflows.cancel(_checked_id(workflow_id))
    if outcome == "terminal":
        raise WorkflowAlreadyEnded(workflow_id, before)
    return WorkflowCancelled(workflow_id=workflow_id, state=State.REVOKED, outcome="revoked")
