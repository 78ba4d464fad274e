"""Fixtures: throwaway stacks of real processes (redis-server, uvicorn, Celery) on free ports.

Tests never touch a Redis they did not start. One session stack serves the tests that only
add their own tasks; tests that kill, stop or count queues build their own with `make_stack`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import Stack
from tests.helpers import ApiClient, sample, scrape, wait_for

# Short limits so that redelivery, expiry and shutdown play out in seconds.
FAST_ENV = {
    "KUBETASKS_TASK_TIME_LIMITS": '{"sleep": 30, "primes": 30, "flaky": 20, "thumbnail": 20}',
    "KUBETASKS_VISIBILITY_TIMEOUT_SECONDS": "40",
    "KUBETASKS_RESTORE_INTERVAL_SECONDS": "1",
    "KUBETASKS_WORKER_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "KUBETASKS_WORKER_HEARTBEAT_MAX_AGE_SECONDS": "5",
    "KUBETASKS_SCHEDULER_INTERVAL_SECONDS": "0.2",
    "KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT": "5",
    "KUBETASKS_MAX_REDELIVERIES": "2",
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    shared = Stack(workdir=tmp_path_factory.mktemp("stack"), extra_env=dict(FAST_ENV))
    try:
        shared.start_redis()
        shared.start_api()
        shared.start_worker()
        yield shared
    finally:
        shared.stop_all(timeout=15)


@pytest.fixture
def api(stack: Stack) -> Iterator[ApiClient]:
    with ApiClient(base_url=stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Build a private stack; `env` adds to FAST_ENV. Everything it started stops afterwards."""
    created: list[Stack] = []

    def make(env: dict[str, str] | None = None, **kwargs: Any) -> Stack:
        private = Stack(
            workdir=tmp_path / f"stack{len(created)}",
            extra_env={**FAST_ENV, **(env or {})},
            **kwargs,
        )
        created.append(private)
        return private

    yield make
    for private in created:
        private.stop_all(timeout=15)


@pytest.fixture(scope="session")
def exposed_metric_names(stack: Stack) -> set[str]:
    """Every metric family and sample name the API, a worker and the scheduler expose after real
    work, the scheduler holding the lease over one schedule."""
    worker = next(p for p in stack.processes if p.metrics_url)
    with ApiClient(base_url=stack.api_url, timeout=10) as api:
        ok = api.submit("sleep", {"seconds": 0})
        bad = api.submit("thumbnail", {"image_base64": "bm90IGFuIGltYWdl"})
        for task_id in (ok, bad):
            api.wait_task(task_id)
        api.get("/tasks/0123456789abcdef0123456789abcdef")
        # Hourly: its first run comes an hour after it was created, long after this.
        schedule = {
            "name": "metric-names",
            "task": "sleep",
            "args": {"seconds": 0},
            "interval_seconds": 3600,
        }
        assert api.post("/schedules", json=schedule).status_code == 201
        scheduler = stack.start_scheduler()
        try:
            leader = scheduler.metrics_url
            assert leader is not None
            wait_for(
                lambda: sample(scrape(leader), "kubetasks_schedule_interval_seconds") > 0,
                20,
                "the lease holder's schedule gauges",
            )
            names: set[str] = set()
            for url in (f"{stack.api_url}/metrics", worker.metrics_url, leader):
                assert url is not None
                names |= {name for name, _ in scrape(url)}
        finally:
            scheduler.stop()
            api.delete(f"/schedules/{schedule['name']}")
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        names |= {n.removesuffix(suffix) for n in names if n.endswith(suffix)}
    return names


def client_for(stack: Stack, **headers: str) -> ApiClient:
    return ApiClient(base_url=stack.api_url, timeout=10, headers=headers)
