"""Cancel, expiry and backlog limits, each on a private stack it controls."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from devstack.processes import Stack
from tests.conftest import client_for
from tests.helpers import programmatic_worker, run_flaky_as, wait_for


def test_cancel_with_no_worker_online_means_the_task_never_runs(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        victim = api.submit("sleep", {"seconds": 0, "note": "must not run"})
        after = api.submit("sleep", {"seconds": 0})
        response = api.delete(f"/tasks/{victim}")
        assert response.status_code == 200
        assert response.json()["state"] == "REVOKED"

        stack.start_worker()
        assert api.wait_task(after)["state"] == "SUCCESS"
        view = api.task(victim)
        assert view["state"] == "REVOKED"
        assert view["attempts"] == 0
        assert view["started_at"] is None
        assert view["result"] is None
        # Its message was consumed and dropped, not left behind. With two pool processes the
        # other task can finish before the skipped delivery's acknowledgement lands.
        wait_for(lambda: api.queue("default")["backlog"] == 0, 10, "an empty default queue")

        again = api.post(f"/tasks/{victim}/cancel")  # a cancel sent twice answers the same
        assert again.status_code == 200 and again.json()["state"] == "REVOKED"


def test_cancel_stops_a_running_task(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    stack.start_worker(concurrency=1)
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 25})
        api.wait_task(task_id, lambda t: t["state"] == "STARTED")
        assert api.post(f"/tasks/{task_id}/cancel").json()["state"] == "REVOKED"
        # The single pool process is free again long before the 25 s sleep would end.
        start = time.monotonic()
        follower = api.submit("sleep", {"seconds": 0})
        assert api.wait_task(follower, timeout=15)["state"] == "SUCCESS"
        assert time.monotonic() - start < 15
        view = api.task(task_id)
        assert view["state"] == "REVOKED"
        assert view["result"] is None


@pytest.mark.parametrize(
    "busy",
    ["time.sleep(30)", "while True: pass"],
    ids=["blocked-in-a-call", "computing"],
)
def test_cancel_stops_a_task_that_never_reports_progress(
    make_stack: Callable[..., Stack], busy: str
) -> None:
    """The worker tells the one pool process that runs the task, which raises inside it; the
    process lives on and runs the next task."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    setup = (
        "import os, time\n"
        "def silent(args, ctx):\n"
        "    if args.failures:\n"
        f"        {busy}\n"
        "    return os.getpid()\n"
    ) + run_flaky_as("silent")
    worker = programmatic_worker(stack, "silent", setup=setup, concurrency=1)
    with client_for(stack) as api:
        task_id = api.submit("flaky", {"failures": 1})
        pid = api.wait_task(task_id, {"STARTED"})["worker_pid"]
        assert api.delete(f"/tasks/{task_id}").status_code == 200
        cancelled = time.monotonic()
        follower = api.wait_task(api.submit("flaky", {"failures": 0}), timeout=10)
        assert time.monotonic() - cancelled < 4  # a cancel check every second, then the raise
        assert follower["result"] == pid  # the same, only pool process ran it
        assert api.task(task_id)["state"] == "REVOKED"
    assert f"task {task_id} cancelled while running" in worker.output()


def test_expired_record_is_410_never_pending_then_404_after_the_tombstone_ttl(
    make_stack: Callable[..., Stack],
) -> None:
    tombstone_ttl = 4
    stack = make_stack(
        env={
            "KUBETASKS_RECORD_TTL_SECONDS": "1",
            "KUBETASKS_TOMBSTONE_TTL_SECONDS": str(tombstone_ttl),
        }
    )
    stack.start_redis()
    stack.start_api()
    stack.start_worker()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 0})
        submitted = time.monotonic()
        assert api.wait_task(task_id)["state"] == "SUCCESS"
        deadline = time.monotonic() + 10
        while (response := api.get(f"/tasks/{task_id}")).status_code == 200:
            assert time.monotonic() < deadline, "the record never expired"
            time.sleep(0.1)
        assert response.status_code == 410
        assert response.json()["error"] == "task_expired"
        assert api.get("/tasks/0123456789abcdef0123456789abcdef").status_code == 404
        # The tombstone goes once the task is older than its TTL (the trim runs every
        # tombstone_ttl / 2): an id that old answers as one never submitted.
        wait_for(lambda: api.get(f"/tasks/{task_id}").status_code == 404, 10, "404")
        assert time.monotonic() - submitted >= tombstone_ttl - 0.5
        assert api.get(f"/tasks/{task_id}").json()["error"] == "task_not_found"


def test_backlog_over_the_queue_limit_is_429(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(env={"KUBETASKS_QUEUE_MAX_BACKLOG": '{"cpu": 3}'})
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        for _ in range(3):
            api.submit("primes", {"limit": 100})
        response = api.post("/tasks", json={"name": "primes", "args": {"limit": 100}})
        assert response.status_code == 429
        assert response.headers["retry-after"]
        assert response.json()["queue"] == "cpu"
        assert api.queue("cpu")["ready"] == 3
        # Other queues are not affected.
        assert api.post("/tasks", json={"type": 0}).status_code == 202
