"""Queue depth, in-flight work and the workers that consume each queue."""

from __future__ import annotations

import time

import redis.exceptions
from fastapi import APIRouter

from api.deps import AUTHORIZED_RAISES, Authorized, StoreDep
from api.errors import responses
from api.schemas import QueuesView, QueueView

router = APIRouter(
    tags=["queues"],
    dependencies=[Authorized],
    responses=responses(*AUTHORIZED_RAISES, redis.exceptions.RedisError),
)


@router.get("/queues", response_model=QueuesView, summary="Every configured queue, live")
async def queues(store: StoreDep) -> QueuesView:
    overview = await store.overview()
    now = time.time()
    return QueuesView(
        queues=[
            QueueView(
                name=q.name,
                ready=q.ready,
                in_flight=q.in_flight,
                backlog=q.backlog,
                oldest_age_seconds=round(q.oldest_age_seconds(now), 3),
                workers=q.workers,
                max_backlog=store.max_backlog(q.name),
            )
            for q in overview.queues
        ],
        delayed=overview.delayed,
        dead_letters=overview.dead_letters,
        workers=len(overview.workers),
    )
