"""Redis goes away and comes back: fast 503s, honest probes, recovery without restarts."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable

import httpx
import pytest
import uvloop

from api.redis import connect
from contracts.settings import Settings
from devstack.processes import Stack
from tests.chart.rendering import one, pod_spec, render
from tests.conftest import client_for
from tests.helpers import ApiClient, wait_for
from worker.records import RecordsUnavailable, WorkerRecords

# RFC 6761: names under .invalid never resolve.
UNRESOLVABLE_HOST = "kt-no-such-redis.invalid"


def test_redis_down_gives_fast_503_and_recovery_needs_no_restart(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    redis = stack.start_redis()
    api_process = stack.start_api()
    worker = stack.start_worker()
    with client_for(stack) as api:
        assert api.wait_task(api.submit("sleep", {"seconds": 0}))["state"] == "SUCCESS"
        # Kill Redis after the worker acknowledged: a Redis death in the very instant of an ack
        # is kombu's own race (docs/reliability.md, Limits), not what this test is about.
        wait_for(lambda: api.queue("default")["in_flight"] == 0, 10, "the ack")
        redis.stop(signal.SIGKILL)

        start = time.monotonic()
        response = api.post("/tasks", json={"type": 0})
        assert time.monotonic() - start < 2
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.json()["error"] == "redis_unavailable"
        assert api.get("/readyz").status_code == 200
        assert api.get("/readyz?deep=1").status_code == 503
        assert api.get("/livez").status_code == 200
        assert api.get("/tasks/0123456789abcdef0123456789abcdef").status_code == 503

        stack.processes.remove(redis)
        stack.start_redis()
        wait_for(lambda: api.get("/readyz?deep=1").status_code == 200, 10, "Redis to answer")
        task_id = api.submit("sleep", {"seconds": 0})
        assert api.wait_task(task_id, timeout=45)["state"] == "SUCCESS"
    assert api_process.alive() and worker.alive()


def test_hung_redis_still_answers_503_within_two_seconds(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    redis = stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        assert api.post("/tasks", json={"type": 0}).status_code == 202
        redis.send(signal.SIGSTOP)
        try:
            start = time.monotonic()
            response = api.post("/tasks", json={"type": 0})
            elapsed = time.monotonic() - start
        finally:
            redis.send(signal.SIGCONT)
        assert response.status_code == 503
        assert elapsed < 2
        wait_for(lambda: api.get("/readyz?deep=1").status_code == 200, 10, "Redis to answer")
        assert api.post("/tasks", json={"type": 0}).status_code == 202


def chart_http_probes(workload_suffix: str) -> dict[str, str]:
    """The paths the chart's probes of this Deployment's container ask for."""
    container = pod_spec(one(render(), "Deployment", workload_suffix))["containers"][0]
    probes = ("startupProbe", "readinessProbe", "livenessProbe")
    return {probe: container[probe]["httpGet"]["path"] for probe in probes}


def test_a_redis_outage_leaves_api_and_flower_ready_and_the_deep_check_follows_redis(
    make_stack: Callable[..., Stack],
) -> None:
    api_probes = chart_http_probes("-api")
    flower_probes = chart_http_probes("-flower")
    deep = api_probes["startupProbe"]
    stack = make_stack()
    redis = stack.start_redis()
    stack.start_api()
    stack.start_flower()
    flower_base = stack.flower_url.removesuffix("/flower")

    def assert_serving(api: ApiClient) -> None:
        """Every probe that keeps a pod in its Service or alive passes."""
        for path in (api_probes["readinessProbe"], api_probes["livenessProbe"]):
            assert api.get(path).status_code == 200, path
        for path in set(flower_probes.values()):
            assert httpx.get(flower_base + path, timeout=5).status_code == 200, path

    def deep_answers(api: ApiClient, status: int) -> bool:
        assert_serving(api)
        return bool(api.get(deep).status_code == status)

    with client_for(stack) as api:
        assert api.get(deep).json() == {"status": "ok", "redis": "ok"}
        redis.stop(signal.SIGKILL)

        submit = api.post("/tasks", json={"type": 0})
        assert submit.status_code == 503
        assert submit.headers["retry-after"] == "2"
        assert_serving(api)
        checked = api.get(deep)
        assert checked.status_code == 503
        assert checked.headers["retry-after"] == "2"
        assert checked.json()["error"] == "redis_unavailable"
        assert "Redis is unreachable" in checked.json()["message"]

        stack.processes.remove(redis)
        stack.start_redis()
        # This Redis comes back empty: the catalogue returns as a worker's next beat brings it.
        stack.publish_catalogue()
        wait_for(lambda: deep_answers(api, 200), 10, "the deep check to see Redis again")
        assert api.post("/tasks", json={"type": 0}).status_code == 202


def test_a_redis_host_that_does_not_resolve_is_an_outage(make_stack: Callable[..., Stack]) -> None:
    # What the API logged while the headless Service had no address: redis-py raises the
    # resolver's gaierror as a ConnectionError, which the API and the worker treat as an outage.
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(UNRESOLVABLE_HOST, 6379)
    url = f"redis://{UNRESOLVABLE_HOST}:6379/0"
    stack = make_stack()
    stack.start_api(publish_catalogue=False, KUBETASKS_REDIS_URL=url)
    with client_for(stack) as api:
        start = time.monotonic()
        response = api.post("/tasks", json={"type": 0})
        assert time.monotonic() - start < 2
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        assert response.json()["error"] == "redis_unavailable"
        assert UNRESOLVABLE_HOST in response.json()["message"]  # not a timeout
        assert api.get("/readyz").status_code == 200
        assert api.get("/readyz?deep=1").status_code == 503

    records = WorkerRecords(Settings(redis_url=url), socket_timeout=0.5)
    with pytest.raises(RecordsUnavailable, match=UNRESOLVABLE_HOST):
        records.states(["0123456789abcdef0123456789abcdef"])


def test_a_connection_redis_closed_reconnects_under_uvloop(
    make_stack: Callable[..., Stack],
) -> None:
    """uvloop answers a write to a closed socket with RuntimeError, not the OSError redis-py
    turns into a ConnectionError and retries (MagicStack/uvloop#506): during a Redis restart
    that was a 500. The API's client reconnects instead, as with asyncio's own loop."""
    stack = make_stack()
    stack.start_redis()

    async def closed_under_the_client() -> bool:
        client = connect(Settings(redis_url=stack.redis_url))
        try:
            await client.ping()
            writer = client.connection_pool._available_connections[0]._writer
            assert writer is not None
            writer.transport.abort()  # as Redis restarting would
            return bool(await client.ping())
        finally:
            await client.aclose()

    assert uvloop.run(closed_under_the_client())
