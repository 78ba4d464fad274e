"""A script whose reply is lost is sent again by redis-py: the worker's client after a timeout
or a broken connection (up to eight times), the API's after a broken connection (once; a timeout
is a 503). The second sending must answer as the first did: a re-sent start must not find its
own lease and park the task, a re-sent submit must not queue the task twice."""

from __future__ import annotations

from collections.abc import Callable

import redis

from contracts import records, scripts
from contracts.settings import Settings
from devstack.processes import Stack
from tests.conftest import client_for
from tests.proxy import DelayingProxy
from worker.records import Run, WorkerRecords


def test_a_start_whose_reply_came_too_late_runs_the_task(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 0})  # no worker: it waits
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    with DelayingProxy(stack.redis_port) as proxy:
        worker_records = WorkerRecords(
            Settings(redis_url=f"redis://127.0.0.1:{proxy.port}/0"), socket_timeout=0.5
        )
        worker_records.client.script_load(scripts.START.source)
        proxy.hold_next_reply(1.5)
        decision = worker_records.start(task_id, "tag-1", "worker@test", 30)
        assert proxy.held == 1
    assert decision == Run(attempt=1, priority=0)
    record = r.hgetall(records.record_key(task_id))
    assert (record["state"], record["attempts"], record["tag"]) == ("STARTED", "1", "tag-1")


def test_a_submit_whose_reply_was_lost_queues_the_task_once(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    r = redis.Redis.from_url(stack.redis_url)
    with DelayingProxy(stack.redis_port) as proxy:
        stack.start_api(KUBETASKS_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0")
        with client_for(stack) as api:
            api.submit("sleep", {"seconds": 0})  # loads the script
            proxy.drop_next_reply()
            response = api.post(
                "/tasks", json={"name": "sleep", "args": {"seconds": 0}, "idempotency_key": "k"}
            )
            assert proxy.held == 1
            assert response.status_code == 202, response.text
            assert response.json()["created"] is True  # its own first sending, not "existing"
    queued = sum(int(r.llen(key)) for key in records.queue_lists("default"))
    assert queued == 2  # the warm-up's and this one's: one message each
