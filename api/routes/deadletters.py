"""Tasks whose worker process died on every delivery: list them, requeue or discard them."""

from __future__ import annotations

from typing import Annotated

import redis.exceptions
from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from api.deps import AUTHORIZED_RAISES, Authorized, StoreDep
from api.errors import responses
from api.exceptions import DeadLetterNotFound
from api.schemas import TaskPage, TaskView
from contracts import records

# Every route here takes parameters (FastAPI would document its own 422 shape otherwise).
router = APIRouter(
    prefix="/deadletters",
    tags=["dead letters"],
    dependencies=[Authorized],
    responses=responses(*AUTHORIZED_RAISES, RequestValidationError, redis.exceptions.RedisError),
)


@router.get("", response_model=TaskPage, summary="Dead-lettered tasks, newest first")
async def list_dead_letters(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> TaskPage:
    page = await store.list(records.DEADLETTER, limit=limit, cursor=None)
    return TaskPage(
        items=[
            TaskView.from_record(i, r, tracebacks=store.settings.show_tracebacks)
            for i, r in page.items
        ],
        next_cursor=None,
    )


@router.post(
    "/{task_id}/requeue",
    status_code=202,
    responses=responses(DeadLetterNotFound),
    summary="Queue a dead letter again",
)
async def requeue(task_id: str, store: StoreDep) -> dict[str, str]:
    await store.requeue_dead_letter(task_id)
    return {"task_id": task_id, "state": "PENDING"}


@router.delete(
    "/{task_id}",
    responses=responses(DeadLetterNotFound),
    summary="Drop a dead letter (its record expires as usual)",
)
async def discard(task_id: str, store: StoreDep) -> dict[str, str]:
    await store.discard_dead_letter(task_id)
    return {"task_id": task_id, "state": "FAILURE"}
