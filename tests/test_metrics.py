"""Metrics are exact: queue gauges from Redis with no worker, worker counters across prefork."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from devstack.processes import Stack
from tests.conftest import FAST_ENV, client_for
from tests.helpers import sample, scrape, wait_for


def test_fresh_api_with_no_worker_reports_the_true_backlog(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    first_api = stack.start_api()
    with client_for(stack) as api:
        for priority in (0, 0, 5, 9, 9):
            api.submit("sleep", {"seconds": 0}, priority=priority)
        api.submit("primes", {"limit": 100})
        api.submit("sleep", {"seconds": 0}, countdown=600)
    # A brand-new API process knows nothing in memory: everything comes from Redis.
    first_api.stop()
    stack.processes.remove(first_api)
    stack.start_api()
    samples = scrape(f"{stack.api_url}/metrics")
    assert sample(samples, "kubetasks_queue_ready_messages", queue="default") == 5
    assert sample(samples, "kubetasks_queue_backlog", queue="default") == 5
    assert sample(samples, "kubetasks_queue_backlog", queue="cpu") == 1
    assert sample(samples, "kubetasks_queue_inflight_messages", queue="default") == 0
    assert sample(samples, "kubetasks_queue_workers", queue="default") == 0
    assert sample(samples, "kubetasks_delayed_tasks") == 1
    assert sample(samples, "kubetasks_redis_up") == 1
    first_age = sample(samples, "kubetasks_queue_oldest_message_age_seconds", queue="default")
    assert first_age > 0
    wait_for(
        lambda: (
            sample(
                scrape(f"{stack.api_url}/metrics"),
                "kubetasks_queue_oldest_message_age_seconds",
                queue="default",
            )
            > first_age + 0.5
        ),
        5,
        "the oldest message to age",
    )


def test_busy_workers_keep_their_tasks_in_the_backlog(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    stack.start_worker(concurrency=2)
    with client_for(stack) as api:
        running = [api.submit("sleep", {"seconds": 20}) for _ in range(2)]
        for task_id in running:
            api.wait_task(task_id, {"STARTED"})
        api.submit("sleep", {"seconds": 0})
        samples = scrape(f"{stack.api_url}/metrics")
        # The lists hold one message; the two running ones are in flight, not gone.
        assert sample(samples, "kubetasks_queue_ready_messages", queue="default") == 1
        assert sample(samples, "kubetasks_queue_inflight_messages", queue="default") == 2
        assert sample(samples, "kubetasks_queue_backlog", queue="default") == 3
        assert sample(samples, "kubetasks_queue_workers", queue="default") == 1
        for task_id in running:
            api.delete(f"/tasks/{task_id}")


def test_prefork_counters_are_exact_on_every_scrape(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker(concurrency=3)
    assert worker.metrics_url
    with client_for(stack) as api:
        ids = [api.submit("sleep", {"seconds": 0}) for _ in range(100)]
        for task_id in ids:
            api.wait_task(task_id)
    for _ in range(5):
        samples = scrape(worker.metrics_url)
        labels = {"task": "sleep", "queue": "default"}
        assert sample(samples, "kubetasks_worker_tasks_started_total", **labels) == 100
        assert (
            sample(samples, "kubetasks_worker_tasks_completed_total", outcome="succeeded", **labels)
            == 100
        )
        assert sample(samples, "kubetasks_worker_task_runtime_seconds_count", **labels) == 100
        assert sample(samples, "kubetasks_worker_tasks_in_progress", **labels) == 0
        assert not {k for (_, ls) in samples for k, _ in ls} & {"hostname", "pid", "task_id"}


def test_killed_pool_process_does_not_leave_a_task_in_progress(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker(concurrency=2)
    assert worker.metrics_url
    url = worker.metrics_url
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 20})
        view = api.wait_task(task_id, lambda t: t["state"] == "STARTED")
        labels = {"task": "sleep", "queue": "default"}
        assert sample(scrape(url), "kubetasks_worker_tasks_in_progress", **labels) == 1
        os.kill(view["worker_pid"], signal.SIGKILL)
        api.wait_task(task_id, lambda t: t["state"] == "STARTED" and t["attempts"] == 2)
        assert sample(scrape(url), "kubetasks_worker_tasks_in_progress", **labels) == 1
        api.delete(f"/tasks/{task_id}")
        wait_for(
            lambda: sample(scrape(url), "kubetasks_worker_tasks_in_progress", **labels) == 0,
            10,
            "the cancelled task to leave the in-progress gauge",
        )


def test_a_killed_worker_leaves_queues_after_the_heartbeat_max_age(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker()
    max_age = float(FAST_ENV["KUBETASKS_WORKER_HEARTBEAT_MAX_AGE_SECONDS"])
    with client_for(stack) as api:
        wait_for(lambda: api.queue("default")["workers"] == 1, 10, "the worker in /queues")
        worker.kill()  # no goodbye: only its heartbeat stops
        killed = time.monotonic()
        assert api.queue("default")["workers"] == 1  # not at once: it may only be slow
        wait_for(lambda: api.queue("default")["workers"] == 0, max_age + 3, "it to leave")
        assert time.monotonic() - killed >= max_age - 1
        assert api.get("/queues").json()["workers"] == 0


QUEUE_GAUGES = {
    "kubetasks_queue_ready_messages",
    "kubetasks_queue_inflight_messages",
    "kubetasks_queue_backlog",
    "kubetasks_queue_oldest_message_age_seconds",
    "kubetasks_queue_workers",
    "kubetasks_delayed_tasks",
    "kubetasks_deadletter_messages",
    "kubetasks_redis_up",
}


def test_queue_gauges_carry_the_release_label_only_when_one_is_named(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    named = stack.start_api(KUBETASKS_METRICS_RELEASE="blue")
    with client_for(stack) as api:
        api.submit("sleep", {"seconds": 0})
    samples = scrape(f"{stack.api_url}/metrics")
    assert sample(samples, "kubetasks_queue_backlog", queue="default", release="blue") == 1
    labelled = {name for (name, labels) in samples if any(k == "release" for k, _ in labels)}
    assert labelled == QUEUE_GAUGES, "the queue gauges and nothing else"
    assert all(("release", "blue") in labels for (name, labels) in samples if name in QUEUE_GAUGES)
    named.stop()
    stack.processes.remove(named)
    stack.start_api()
    samples = scrape(f"{stack.api_url}/metrics")
    assert sample(samples, "kubetasks_queue_backlog", queue="default") == 1
    assert not [labels for (_, labels) in samples if any(k == "release" for k, _ in labels)]
