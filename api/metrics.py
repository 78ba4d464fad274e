"""The API's Prometheus metrics, written with prometheus-client directly.

A maintained instrumentation library (prometheus-fastapi-instrumentator) would add a dependency
for one histogram; a 30-line ASGI middleware labels by route template and status class exactly
as our alerts and dashboards expect. Queue gauges are read from Redis at scrape time, so they
are right with no worker running, and identical on every API replica (aggregate with max).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_DURATION = Histogram(
    "kubetasks_http_request_duration_seconds",
    "HTTP request latency by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
SUBMITTED = Counter(
    "kubetasks_tasks_submitted",
    "Tasks accepted for execution.",
    ["task", "queue"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "kubetasks_api_rejections",
    "Requests refused before any work was queued.",
    ["reason"],
    registry=REGISTRY,
)
QUEUE_READY = Gauge(
    "kubetasks_queue_ready_messages",
    "Messages waiting in the queue, summed over all its priority lists.",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_INFLIGHT = Gauge(
    "kubetasks_queue_inflight_messages",
    "Messages delivered to a worker and not yet acknowledged (prefetched or running).",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_BACKLOG = Gauge(
    "kubetasks_queue_backlog",
    "Ready plus in-flight messages: the autoscaling signal.",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_OLDEST_AGE = Gauge(
    "kubetasks_queue_oldest_message_age_seconds",
    "Age of the oldest waiting message (0 when the queue is empty).",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_WORKERS = Gauge(
    "kubetasks_queue_workers",
    "Live workers consuming the queue (from worker heartbeats).",
    ["queue"],
    registry=REGISTRY,
)
DELAYED = Gauge(
    "kubetasks_delayed_tasks",
    "Tasks waiting for a countdown or a retry backoff.",
    registry=REGISTRY,
)
DEAD_LETTERS = Gauge(
    "kubetasks_deadletter_messages",
    "Tasks in the dead-letter list.",
    registry=REGISTRY,
)
FAST_LANE = Counter(
    "kubetasks_api_fast_lane_answers",
    "Requests answered by the fast lane (api/fastlane.py) rather than FastAPI's routing, by route "
    "template: against the request count, how much of the hot routes' traffic takes it.",
    ["route"],
    registry=REGISTRY,
)
REDIS_UP = Gauge(
    "kubetasks_redis_up",
    "1 when this scrape reached Redis, else 0.",
    registry=REGISTRY,
)

# The gauges read from Redis at scrape time: they describe the release's Redis, not this process.
QUEUE_GAUGES = (
    QUEUE_READY,
    QUEUE_INFLIGHT,
    QUEUE_BACKLOG,
    QUEUE_OLDEST_AGE,
    QUEUE_WORKERS,
    DELAYED,
    DEAD_LETTERS,
    REDIS_UP,
)
QUEUE_GAUGE_NAMES = frozenset(family.name for gauge in QUEUE_GAUGES for family in gauge.describe())
RELEASE_LABEL = "release"

for reason in ("backlog_full", "redis_unavailable", "unauthorized", "too_large"):
    REJECTIONS.labels(reason=reason)


class ReleaseLabelled:
    """REGISTRY as /metrics serves it: with a release name (KUBETASKS_METRICS_RELEASE, which the
    Helm chart sets to the release), every queue gauge carries `release="<name>"`. Two releases in
    one namespace export the same queue names; where the scrape adds no label that tells them
    apart (no `service`, e.g. a PodMonitor or an annotation-driven pod job), the autoscalers
    select on this one. Without a name the samples pass unchanged."""

    def __init__(self, release: str) -> None:
        self.release = release

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if self.release and family.name in QUEUE_GAUGE_NAMES:
                family.samples = [
                    sample._replace(labels={**sample.labels, RELEASE_LABEL: self.release})
                    for sample in family.samples
                ]
            yield family


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            # Routing stores the matched route in the scope; anything else is one label value.
            template = getattr(route, "path", "unmatched")
            HTTP_DURATION.labels(template, scope["method"], f"{status // 100}xx").observe(
                time.perf_counter() - start
            )
