"""Probes for Kubernetes and the Prometheus scrape endpoint."""

from __future__ import annotations

import logging
import time

import redis.exceptions
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import metrics
from api.deps import SettingsDep, StoreDep
from api.errors import responses
from api.exceptions import RedisUnavailable
from api.store import TaskStore

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/livez", summary="The process answers (never touches Redis)")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis answers within the timeout",
    responses=responses(RedisUnavailable),
)
async def readyz(store: StoreDep) -> dict[str, str]:
    try:
        await store.ping()
    except redis.exceptions.RedisError as exc:
        raise RedisUnavailable(str(exc)) from exc
    return {"status": "ok"}


async def refresh_queue_gauges(store: TaskStore) -> None:
    try:
        overview = await store.overview()
    except redis.exceptions.RedisError as exc:
        log.warning("queue metrics unavailable: %s", exc)
        metrics.REDIS_UP.set(0)
        return
    metrics.REDIS_UP.set(1)
    now = time.time()
    for q in overview.queues:
        metrics.QUEUE_READY.labels(q.name).set(q.ready)
        metrics.QUEUE_INFLIGHT.labels(q.name).set(q.in_flight)
        metrics.QUEUE_BACKLOG.labels(q.name).set(q.backlog)
        metrics.QUEUE_OLDEST_AGE.labels(q.name).set(q.oldest_age_seconds(now))
        metrics.QUEUE_WORKERS.labels(q.name).set(q.workers)
    metrics.DELAYED.set(overview.delayed)
    metrics.DEAD_LETTERS.set(overview.dead_letters)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics(store: StoreDep, settings: SettingsDep) -> Response:
    await refresh_queue_gauges(store)
    exposition = generate_latest(metrics.ReleaseLabelled(settings.metrics_release))
    return Response(exposition, media_type=CONTENT_TYPE_LATEST)
