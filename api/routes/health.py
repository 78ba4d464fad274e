"""Probes for Kubernetes and the Prometheus scrape endpoint.

Readiness says whether this process can serve, not whether Redis is up: every API pod shares the
one Redis, so a Redis check would take them all out of their Service at once, and clients would
get connection refused (or an ingress's own 502) instead of the API's 503 with Retry-After.
`/readyz?deep=1` adds the Redis check for the start-up probe (a new pod that cannot reach Redis
never joins the Service, so a rollout with a wrong Redis URL or password stalls) and for people.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

import redis.exceptions
from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
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
    summary="The app has started and serves requests; with deep=1, Redis answers too",
    responses=responses(RequestValidationError, RedisUnavailable),
)
async def readyz(
    store: StoreDep,
    deep: Annotated[
        bool, Query(description="Also ping Redis: 503 `redis_unavailable` when it does not answer")
    ] = False,
) -> dict[str, str]:
    if not deep:
        return {"status": "ok"}
    try:
        await store.ping()
    except redis.exceptions.RedisError as exc:
        raise RedisUnavailable(str(exc)) from exc
    return {"status": "ok", "redis": "ok"}


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
