"""One event stream for many tasks: given ones, or every task in a state or of a name."""

from __future__ import annotations

from typing import Annotated

import redis.exceptions
from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from api import events
from api.deps import AUTHORIZED_RAISES, Authorized, StoreDep
from api.errors import invalid, responses
from api.exceptions import TooManyStreams
from api.routes.tasks import MAX_TASK_ID_LENGTH, follow_tasks
from contracts.records import State

router = APIRouter(
    prefix="/events",
    tags=["events"],
    dependencies=[Authorized],
    responses=responses(*AUTHORIZED_RAISES, RequestValidationError, redis.exceptions.RedisError),
)

MAX_IDS = 200


@router.get(
    "",
    responses={**responses(TooManyStreams), 200: {"content": {"text/event-stream": {}}}},
    summary="Server-Sent Events of many tasks on one connection",
)
async def task_events(
    store: StoreDep,
    ids: Annotated[
        str | None,
        Query(
            description=f"Task ids, comma-separated, at most {MAX_IDS}: each one's view now, "
            "then on every change, until every one ended. Unknown ids are left out."
        ),
    ] = None,
    state: Annotated[
        State | None, Query(description="Without ids: every task that changes into this state.")
    ] = None,
    name: Annotated[
        str | None, Query(description="Without ids: every change of a task of this name.")
    ] = None,
) -> events.EventStream:
    """`task` events, each with the id `<task id>:<version>`: a client that reconnects (with
    Last-Event-ID, or without) gets the current views first. Keep-alive comments every 15 s."""
    if ids is None:
        return await events.sse(store.events, follow_tasks(store, None, state, name))
    if state is not None or name is not None:
        raise invalid((("query", "ids"), "follows the given tasks alone, not with state or name"))
    wanted = list(dict.fromkeys(i for i in ids.split(",") if i))
    if not 1 <= len(wanted) <= MAX_IDS:
        raise invalid((("query", "ids"), f"give 1 to {MAX_IDS} task ids"))
    if any(len(i) > MAX_TASK_ID_LENGTH for i in wanted):
        raise invalid((("query", "ids"), f"a task id is at most {MAX_TASK_ID_LENGTH} characters"))
    return await events.sse(store.events, follow_tasks(store, wanted))
