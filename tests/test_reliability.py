"""What the system promises when workers are stopped or killed and when Redis restarts.

Each test names its promise: exactly once (one execution, one result), at least once (an
interrupted execution runs again; attempts count every start), or refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime

import pytest
import redis

from contracts import records
from devstack.processes import ROOT, Process, Stack
from tests.conftest import FAST_ENV, client_for
from tests.helpers import ApiClient, kill_tree, programmatic_worker, sample, scrape, wait_for

# Short limits so the visibility timeout (and so redelivery after a crash) is seconds away.
SHORT_VISIBILITY = {
    "KUBETASKS_TASK_TIME_LIMITS": '{"sleep": 8, "primes": 8, "flaky": 8, "thumbnail": 8}',
    "KUBETASKS_VISIBILITY_TIMEOUT_SECONDS": "13",
}


def test_sigterm_lets_a_running_task_finish_exactly_once(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 2})
        api.wait_task(task_id, {"STARTED"})
        assert worker.stop(signal.SIGTERM, timeout=30) == 0
        view = api.task(task_id)
        assert view["state"] == "SUCCESS"
        assert view["attempts"] == 1


def test_a_soft_shutdown_longer_than_the_heartbeat_max_age_keeps_its_task(
    make_stack: Callable[..., Stack],
) -> None:
    """docs/deploy.md advises a soft shutdown longer than the longest task, which may well be
    longer than the heartbeat max age: the stopping worker keeps beating meanwhile, so the other
    workers never take its running task for a dead worker's. It also says what that costs: the
    worker sits the whole soft shutdown out, though its task ended long before."""
    max_age = float(FAST_ENV["KUBETASKS_WORKER_HEARTBEAT_MAX_AGE_SECONDS"])
    soft_shutdown = 3 * max_age
    stack = make_stack(env={"KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT": str(soft_shutdown)})
    stack.start_redis()
    stack.start_api()
    first = stack.start_worker("first")
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 2 * max_age})
        api.wait_task(task_id, {"STARTED"})
        stack.start_worker("second")
        sent = time.monotonic()
        assert first.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - sent >= soft_shutdown
        view = api.task(task_id)
        assert view["state"] == "SUCCESS"
        assert view["attempts"] == 1
        assert view["worker"].startswith("first@")


def _interrupted_task_completes_on_a_second_worker(
    stack: Stack, seconds: float, interrupt: Callable[[Process], object]
) -> None:
    stack.start_redis()
    stack.start_api()
    first = stack.start_worker("first")
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": seconds})
        api.wait_task(task_id, {"STARTED"})
        interrupt(first)
        stack.start_worker("second")
        done = api.wait_task(task_id, timeout=45)
        assert done["state"] == "SUCCESS"
        assert done["attempts"] == 2  # at least once: the interrupted start counts
        assert done["worker"].startswith("second@")


def test_sigterm_past_the_soft_shutdown_timeout_requeues_and_completes_once_elsewhere(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(env={"KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT": "2", **SHORT_VISIBILITY})

    def soft_shutdown(first: Process) -> None:
        sent = time.monotonic()
        assert first.stop(signal.SIGTERM, timeout=30) == 0
        # Requeued by the worker at the cutoff: back in its list, nothing left unacknowledged,
        # long before the visibility timeout could have restored it.
        r = redis.Redis.from_url(stack.redis_url)
        assert sum(int(r.llen(key)) for key in records.queue_lists("default")) == 1
        assert r.hlen(records.UNACKED) == 0
        visibility = float(SHORT_VISIBILITY["KUBETASKS_VISIBILITY_TIMEOUT_SECONDS"])
        assert time.monotonic() - sent < visibility / 2
        state = r.hget(records.record_key(task_id(r)), records.Field.STATE)
        assert state == b"PENDING"

    _interrupted_task_completes_on_a_second_worker(stack, 6, soft_shutdown)


def task_id(r: redis.Redis) -> str:
    """The one task of a stack."""
    (only,) = r.zrange(records.TASKS_INDEX, 0, -1)
    assert isinstance(only, bytes)
    return only.decode()


def _running_on_one_of_two_workers(
    stack: Stack, api: ApiClient, seconds: float
) -> tuple[str, Process, Process]:
    """A task running on one of two single-process workers: (task id, its worker, the other)."""
    workers = [stack.start_worker(name, concurrency=1) for name in ("one", "two")]
    task_id = api.submit("sleep", {"seconds": seconds})
    running = api.wait_task(task_id, {"STARTED"})
    victim = next(w for w in workers if running["worker"].startswith(f"{w.name}@"))
    return task_id, victim, next(w for w in workers if w is not victim)


def test_a_killed_workers_task_starts_again_elsewhere_after_the_heartbeat_max_age(
    make_stack: Callable[..., Stack],
) -> None:
    """A whole worker SIGKILLed (a node lost, an OOM kill): its messages go back as soon as its
    heartbeat is older than the max age, not after the visibility timeout."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    max_age = float(FAST_ENV["KUBETASKS_WORKER_HEARTBEAT_MAX_AGE_SECONDS"])
    visibility = float(FAST_ENV["KUBETASKS_VISIBILITY_TIMEOUT_SECONDS"])
    with client_for(stack) as api:
        task_id, victim, survivor = _running_on_one_of_two_workers(stack, api, 8)
        kill_tree(victim)
        killed = time.monotonic()
        again = api.wait_task(task_id, lambda t: t["attempts"] == 2, timeout=max_age + 10)
        recovered = time.monotonic() - killed
        assert again["worker"].startswith(f"{survivor.name}@")
        assert recovered < max_age + 4 < visibility  # the max age, a restore round, a fetch
        done = api.wait_task(task_id, timeout=30)
        assert (done["state"], done["attempts"]) == ("SUCCESS", 2)


def test_a_frozen_worker_that_comes_back_finds_its_task_taken_and_stops_it(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        task_id, victim, survivor = _running_on_one_of_two_workers(stack, api, 10)
        os.killpg(victim.pid, signal.SIGSTOP)  # the whole worker, pool included
        try:
            taken = api.wait_task(task_id, lambda t: t["attempts"] == 2, timeout=20)
            assert taken["worker"].startswith(f"{survivor.name}@")
        finally:
            os.killpg(victim.pid, signal.SIGCONT)
        # Its next progress report (within a second) finds another execution holding the task.
        wait_for(lambda: f"task {task_id} was taken over" in victim.output(), 10, "it to stop")
        done = api.wait_task(task_id, timeout=30)
        assert (done["state"], done["attempts"]) == ("SUCCESS", 2)
        assert done["worker"].startswith(f"{survivor.name}@")
    succeeded = f"Task sleep[{task_id}] succeeded"
    assert (victim.output() + survivor.output()).count(succeeded) == 1


def test_countdown_longer_than_the_visibility_timeout_runs_once(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(env=SHORT_VISIBILITY)
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker()
    assert worker.metrics_url
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 0}, countdown=16)
        done = api.wait_task(task_id, timeout=45)
        assert done["state"] == "SUCCESS"
        assert done["attempts"] == 1
        wait_for(
            lambda: (
                api.queue("default")["backlog"] == 0 and api.get("/queues").json()["delayed"] == 0
            ),
            10,
            "nothing left queued or delayed",
        )
    started = sample(scrape(worker.metrics_url), "kubetasks_worker_tasks_started_total")
    assert started == 1


def test_hard_time_limit_fails_the_task_once(make_stack: Callable[..., Stack]) -> None:
    limits = '{"sleep": 3, "primes": 8, "flaky": 8, "thumbnail": 8}'
    stack = make_stack(env={**SHORT_VISIBILITY, "KUBETASKS_TASK_TIME_LIMITS": limits})
    stack.start_redis()
    stack.start_api()
    stack.start_worker()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 20})
        done = api.wait_task(task_id, timeout=20)
        assert done["state"] == "FAILURE"
        assert done["error"]["type"] in {"SoftTimeLimitExceeded", "TimeLimitExceeded"}
        assert done["attempts"] == 1
        wait_for(lambda: api.queue("default")["backlog"] == 0, 10, "the message to be acked")


def test_higher_priority_is_served_first(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        low = [api.submit("sleep", {"seconds": 0}, priority=0) for _ in range(3)]
        high = [api.submit("sleep", {"seconds": 0}, priority=9) for _ in range(3)]
        assert api.queue("default")["ready"] == 6
        stack.start_worker(concurrency=1)
        views = {task_id: api.wait_task(task_id) for task_id in low + high}
    # started_at is in ms: one task's start can share its ms with the next one's, so the check
    # is that no low-priority task started before any high-priority one (a sort would put the
    # low one first in a tie, by submission order).
    started = {task_id: datetime.fromisoformat(v["started_at"]) for task_id, v in views.items()}
    last_high = max(started[task_id] for task_id in high)
    first_low = min(started[task_id] for task_id in low)
    assert last_high <= first_low, views


def test_redis_killed_and_restarted_with_aof_keeps_queued_tasks_and_results(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    redis = stack.start_redis(appendonly=True)
    stack.start_api()
    worker = stack.start_worker()
    with client_for(stack) as api:
        finished = [api.submit("sleep", {"seconds": 0, "note": f"n{i}"}) for i in range(3)]
        for task_id in finished:
            assert api.wait_task(task_id)["state"] == "SUCCESS"
        worker.stop()
        queued = [api.submit("sleep", {"seconds": 0}) for _ in range(5)]

        redis.stop(signal.SIGKILL)
        stack.processes.remove(redis)
        stack.start_redis(appendonly=True)
        wait_for(lambda: api.get("/readyz?deep=1").status_code == 200, 10, "the API to reconnect")

        assert api.queue("default")["ready"] == 5
        for i, task_id in enumerate(finished):
            assert api.task(task_id)["result"] == f"n{i}"
        stack.start_worker("after-restart")
        for task_id in queued:
            assert api.wait_task(task_id)["state"] == "SUCCESS"


def test_heartbeat_stays_fresh_during_a_long_task_and_stops_when_frozen(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    redis = stack.start_redis()
    stack.start_api()
    worker = stack.start_worker(pool="solo", concurrency=1)
    env = stack.env(
        KUBETASKS_WORKER_HEARTBEAT_FILE=str(stack.workdir / "worker" / "heartbeat"),
        KUBETASKS_WORKER_READY_FILE=str(stack.workdir / "worker" / "ready"),
    )

    def probe(kind: str) -> bool:
        result = subprocess.run(
            [sys.executable, "-m", "worker.probe", kind], cwd=ROOT, env=env, timeout=30
        )
        return result.returncode == 0

    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 8})
        api.wait_task(task_id, {"STARTED"})
        # The single process is busy in the task for 8 s, longer than the 5 s max age.
        while api.task(task_id)["state"] == "STARTED":
            assert probe("live")
        assert api.task(task_id)["state"] == "SUCCESS"

        redis.send(signal.SIGSTOP)
        try:
            wait_for(lambda: not probe("ready"), 15, "readiness to fail without Redis")
            assert probe("live"), "a Redis outage must not make the worker look dead"
        finally:
            redis.send(signal.SIGCONT)
        wait_for(lambda: probe("ready"), 15, "readiness to come back")

        worker.send(signal.SIGSTOP)
        try:
            wait_for(lambda: not probe("live"), 15, "liveness to fail when the worker is frozen")
        finally:
            worker.send(signal.SIGCONT)
        wait_for(lambda: probe("live"), 15, "liveness to come back")


def test_a_worker_whose_consumer_stopped_fails_liveness_and_its_successor_runs_the_work(
    make_stack: Callable[..., Stack],
) -> None:
    """The consumer's loop hangs in an acknowledgement (as kombu's did when Redis died in the
    middle of one) while the process and its heartbeat thread live on: the liveness probe must
    fail within the heartbeat max age, so that Kubernetes replaces the worker."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    setup = (
        "import threading, worker.broker\n"
        "worker.broker.QoS.ack = lambda *_: threading.Event().wait()"
    )
    hung = programmatic_worker(stack, "hung", setup=setup)
    env = stack.env(KUBETASKS_WORKER_HEARTBEAT_FILE=str(stack.workdir / "hung" / "heartbeat"))
    max_age = float(FAST_ENV["KUBETASKS_WORKER_HEARTBEAT_MAX_AGE_SECONDS"])

    def live() -> bool:
        probe = [sys.executable, "-m", "worker.probe", "live"]
        return subprocess.run(probe, cwd=ROOT, env=env, timeout=30).returncode == 0

    with client_for(stack) as api:
        assert live()
        first = api.submit("sleep", {"seconds": 0})
        assert api.wait_task(first)["state"] == "SUCCESS"  # then its ack hangs the loop
        stopped = time.monotonic()
        wait_for(lambda: not live(), max_age + 2, "liveness to fail")
        assert time.monotonic() - stopped <= max_age + 1.5  # a tick and a beat of slack
        assert hung.alive()

        hung.stop(signal.SIGKILL)  # what the kubelet does after the probe failed
        stack.start_worker("successor")
        assert api.wait_task(api.submit("sleep", {"seconds": 0}))["state"] == "SUCCESS"
        assert api.task(first)["attempts"] == 1


def test_worker_restart_starts_its_counters_from_zero(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker()
    with client_for(stack) as api:
        for task_id in [api.submit("sleep", {"seconds": 0}) for _ in range(5)]:
            api.wait_task(task_id)
        worker.stop()
        stack.processes.remove(worker)
        worker = stack.start_worker()
        assert worker.metrics_url
        for task_id in [api.submit("sleep", {"seconds": 0}) for _ in range(3)]:
            api.wait_task(task_id)
    # Prometheus treats the drop from 5 to 3 as a counter reset; stale files are not summed in.
    assert sample(scrape(worker.metrics_url), "kubetasks_worker_tasks_started_total") == 3


@pytest.mark.parametrize("key", [None, "wrong"])
def test_api_key_guards_task_data(make_stack: Callable[..., Stack], key: str | None) -> None:
    stack = make_stack(api_key="the-right-key")
    stack.start_redis()
    stack.start_api()
    headers = {"X-API-Key": key} if key else {}
    with client_for(stack, **headers) as api:
        expected = 403 if key else 401
        assert api.post("/tasks", json={"type": 0}).status_code == expected
        assert api.get("/tasks").status_code == expected
        assert api.get("/queues").status_code == expected
        assert api.get("/deadletters").status_code == expected
        assert api.get("/tasks/0123456789abcdef0123456789abcdef").status_code == expected
        assert api.get("/livez").status_code == 200
        assert api.get("/readyz").status_code == 200
        assert api.get("/").status_code == 200
    with client_for(stack, **{"X-API-Key": "the-right-key"}) as api:
        submitted = api.post("/tasks", json={"type": 0})
        assert submitted.status_code == 202
        assert api.get(f"/tasks/{submitted.json()['task_id']}").status_code == 200


def test_second_copy_of_a_running_tasks_message_waits_and_never_runs_alongside(
    make_stack: Callable[..., Stack],
) -> None:
    """Kombu puts unacknowledged messages back when a worker's connection drops; the copy
    must neither run while the original runs nor be dropped while the original may die."""
    stack = make_stack(env=SHORT_VISIBILITY)
    stack.start_redis()
    stack.start_api()
    stack.start_worker("first", concurrency=1)
    stack.start_worker("second", concurrency=1)
    client = redis.Redis.from_url(stack.redis_url)
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 4})
        running = api.wait_task(task_id, {"STARTED"})
        copy = next(v for v in client.hvals("unacked") if task_id.encode() in v)
        message, _, routing_key = json.loads(copy)
        client.lpush(records.queue_lists(routing_key)[-1], json.dumps(message))
        wait_for(lambda: client.zscore(records.DELAYED, task_id) is not None, 10, "the defer")
        done = api.wait_task(task_id, timeout=30)
        assert done["state"] == "SUCCESS"
        assert done["attempts"] == 1
        assert done["worker"] == running["worker"]
        wait_for(
            lambda: client.zcard(records.DELAYED) == 0 and api.queue("default")["backlog"] == 0,
            30,
            "the parked copy to be dropped once the original finished",
        )
        assert api.task(task_id)["attempts"] == 1


def test_a_waiting_task_never_expires(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(
        env={"KUBETASKS_TOMBSTONE_TTL_SECONDS": "1", "KUBETASKS_RECORD_TTL_SECONDS": "1"}
    )
    stack.start_redis()
    stack.start_api()
    client = redis.Redis.from_url(stack.redis_url)
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 0}, countdown=3)
        assert client.ttl(records.record_key(task_id)) == -1  # no expiry while it waits
        stack.start_worker()
        assert api.wait_task(task_id, timeout=30)["state"] == "SUCCESS"
        assert client.ttl(records.record_key(task_id)) > -1


def test_a_message_lost_between_pop_and_ack_is_queued_again(
    make_stack: Callable[..., Stack],
) -> None:
    """Kombu pops a message before it records it as unacknowledged; a worker killed in that
    instant takes it along. The orphan reaper queues such a task again."""
    stack = make_stack(env={"KUBETASKS_ORPHAN_AFTER_SECONDS": "2"})
    stack.start_redis()
    stack.start_api()
    client = redis.Redis.from_url(stack.redis_url)
    with client_for(stack) as api:
        kept = api.submit("sleep", {"seconds": 0})
        lost = api.submit("sleep", {"seconds": 0, "note": "lost"})
        queue_list = records.queue_lists("default")[-1]
        queued = [m for m in client.lrange(queue_list, 0, -1) if isinstance(m, bytes)]
        message = next(m for m in queued if lost.encode() in m)
        assert client.lrem(queue_list, 1, message.decode()) == 1
        stack.start_worker()
        assert api.wait_task(kept)["state"] == "SUCCESS"
        done = api.wait_task(lost, timeout=30)
        assert done["state"] == "SUCCESS"
        assert done["result"] == "lost"
        assert done["attempts"] == 1


def test_reaper_requeues_only_the_lost_task_whatever_json_spacing_the_tail_has(
    make_stack: Callable[..., Stack],
) -> None:
    """Kombu re-serializes a message it restores (`"key": value`, with a space); the reaper
    must still read the publish stamp of such a tail and leave a queued task alone."""
    stack = make_stack(env={"KUBETASKS_ORPHAN_AFTER_SECONDS": "2"})
    stack.start_redis()
    stack.start_api()
    client = redis.Redis.from_url(stack.redis_url)
    queue_list = records.queue_lists("default")[-1]
    with client_for(stack) as api:
        queued = api.submit("sleep", {"seconds": 0})
        lost = api.submit("sleep", {"seconds": 0})
    messages = [m for m in client.lrange(queue_list, 0, -1) if isinstance(m, bytes)]
    client.delete(queue_list)
    for message in messages:
        if queued.encode() in message:  # as kombu writes a message back
            client.lpush(queue_list, json.dumps(json.loads(message)))
    assert b'"kt_published_at": ' in client.lindex(queue_list, -1)  # type: ignore[operator]
    # The lost task waited minutes longer than anything in the list: it can be nowhere.
    record = records.record_key(lost)
    client.hset(record, "submitted_at", int(client.hget(record, "submitted_at") or 0) - 200_000)

    stack.start_worker(queues=["cpu"])  # runs the reaper, consumes nothing of "default"
    # A cycle that takes `lost` also looks at `queued`, submitted before it.
    wait_for(lambda: client.hexists(record, "queued_at"), 20, "the lost task to be re-queued")
    copies = [m for m in client.lrange(queue_list, 0, -1) if isinstance(m, bytes)]
    assert sum(lost.encode() in m for m in copies) == 1
    assert sum(queued.encode() in m for m in copies) == 1
