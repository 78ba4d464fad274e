"""Soak (`make soak`, not in `make test`): 20,000 mixed tasks and 200 workflows while workers are
killed or scaled down every few seconds, Redis is killed and restarted once and so is the
scheduler firing a schedule every second. Every task and every workflow step must end, none may
complete twice, extra executions must be explained by the interruptions, every workflow must
end with its result, and the schedule must have run once per tick, none missed. A task running on
a SIGKILLed worker starts again once that worker's heartbeat is older than the max age (5 s
here), long before the visibility timeout (60 s here): the report gives that recovery time.

Figures go to stdout and to $SOAK_REPORT (JSON) for docs/reliability.md.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from contracts import records
from devstack.processes import Process, Stack
from tests.helpers import kill_tree

pytestmark = [pytest.mark.soak, pytest.mark.timeout(3600)]

TASKS = int(os.environ.get("SOAK_TASKS", "20000"))
WORKFLOW_EVERY = 100  # one workflow per this many tasks
MIXED = ("sleep", "primes", "flaky")  # the tasks' names (workflow steps and schedule runs: add)
CHAOS_EVERY_SECONDS = float(os.environ.get("SOAK_CHAOS_EVERY", "4"))
WORKERS = 2
SOAK_ENV = {
    "KUBETASKS_TASK_TIME_LIMITS": '{"sleep": 10, "primes": 10, "flaky": 10, "thumbnail": 10}',
    # Far above the heartbeat max age (5 s, tests/conftest.py), so that the recovery time
    # measured is the dead-worker restore's, not the visibility timeout's.
    "KUBETASKS_VISIBILITY_TIMEOUT_SECONDS": "60",
    "KUBETASKS_MAX_REDELIVERIES": "10",
    "KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT": "2",
    "KUBETASKS_QUEUE_MAX_BACKLOG": '{"default": 1000000, "cpu": 1000000}',
    "KUBETASKS_ORPHAN_AFTER_SECONDS": "20",
}
SUCCEEDED = re.compile(r"Task \w+\[([0-9a-f]{32})\] succeeded")
REAPED = re.compile(r"queued (\d+) tasks again whose message was lost")


def mixed_body(i: int) -> dict[str, Any]:
    kind = random.Random(i).random()
    if kind < 0.6:
        task: dict[str, Any] = {"name": "sleep", "args": {"seconds": 0}}
    elif kind < 0.75:
        task = {"name": "sleep", "args": {"seconds": 0.5}}
    elif kind < 0.9:
        task = {"name": "primes", "args": {"limit": 20_000}}
    else:
        task = {"name": "flaky", "args": {"failures": 1}}
    return {**task, "idempotency_key": f"soak-{i}"}


def workflow_body(i: int) -> dict[str, Any]:
    """A chain (i + 1) + 1, then a chord of three adds of that, totalled: 3 * (i + 2) + 3."""
    previous = {"task": "add", "args": {"b": 1}, "input": "a"}
    return {
        "chain": [
            {"task": "add", "args": {"a": i, "b": 1}},
            previous,
            {"chord": [previous] * 3, "then": {"task": "total", "input": "numbers"}},
        ]
    }


def workflow_result(i: int) -> int:
    return 3 * (i + 3)


class Chaos:
    """Every few seconds: SIGKILL a worker tree or SIGTERM it (scale-down), then replace it;
    once, when half the tasks are submitted, SIGKILL Redis and restart it on its AOF; once, a
    quarter in, SIGKILL the scheduler and start another (it takes the lease when the dead one's
    expires, and fires the ticks missed meanwhile)."""

    def __init__(
        self, stack: Stack, workers: list[Process], redis_process: Process, scheduler: Process
    ) -> None:
        self.stack, self.workers, self.redis = stack, workers, redis_process
        self.scheduler = scheduler
        self.kills = self.terms = self.redis_restarts = self.scheduler_restarts = 0
        self.scheduler_due = threading.Event()
        self.stop = threading.Event()
        self.redis_due = threading.Event()
        self.names = (f"w{n}" for n in itertools.count(WORKERS))
        # (task id, wall-clock time) of each task running on a worker when it was SIGKILLed
        self.interrupted: list[tuple[str, float]] = []

    def running_on(self, victim: Process) -> list[str]:
        client = redis.Redis.from_url(self.stack.redis_url, socket_timeout=5)
        try:
            started = client.zrange(records.state_index("STARTED"), 0, -1)
            ids = [i.decode() for i in started if isinstance(i, bytes)]
            with client.pipeline(transaction=False) as pipe:
                for task_id in ids:
                    pipe.hget(records.record_key(task_id), records.Field.WORKER)
                workers = pipe.execute()
        except redis.RedisError:
            return []
        finally:
            client.close()
        prefix = f"{victim.name}@".encode()
        return [i for i, w in zip(ids, workers, strict=True) if w and w.startswith(prefix)]

    def run(self) -> None:
        while not self.stop.wait(CHAOS_EVERY_SECONDS):
            if self.scheduler_due.is_set() and not self.scheduler_restarts:
                self.scheduler.stop(signal.SIGKILL)
                self.stack.processes.remove(self.scheduler)
                self.scheduler = self.stack.start_scheduler("scheduler-2", timeout=60)
                self.scheduler_restarts += 1
                continue
            if self.redis_due.is_set() and not self.redis_restarts:
                self.redis.stop(signal.SIGKILL)
                self.stack.processes.remove(self.redis)
                time.sleep(1)
                self.redis = self.stack.start_redis(appendonly=True)
                self.redis_restarts += 1
                continue
            victim = self.workers.pop(0)
            if (self.kills + self.terms) % 2 == 0:
                running = self.running_on(victim)
                kill_tree(victim)
                self.interrupted += [(task_id, time.time()) for task_id in running]
                self.kills += 1
            else:
                victim.stop(signal.SIGTERM, timeout=30)
                self.terms += 1
            self.stack.processes.remove(victim)
            self.workers.append(self.stack.start_worker(next(self.names), timeout=60))


def recovery_seconds(client: redis.Redis, interrupted: list[tuple[str, float]]) -> dict[str, float]:
    """From each SIGKILL to the next start of a task it interrupted (its record's last start:
    a task interrupted again later is left out, its last start is not this recovery's)."""
    last: dict[str, float] = {}
    for task_id, killed_at in interrupted:
        last[task_id] = max(last.get(task_id, 0.0), killed_at)
    delays = []
    for task_id, killed_at in last.items():
        started = client.hget(records.record_key(task_id), records.Field.STARTED_AT)
        if started is not None and int(started) / 1000 > killed_at:
            delays.append(int(started) / 1000 - killed_at)
    delays.sort()
    if not delays:
        return {}
    return {
        "count": len(delays),
        "median": round(delays[len(delays) // 2], 1),
        "max": round(delays[-1], 1),
    }


def submit_all(api_url: str, chaos: Chaos) -> tuple[list[str], dict[int, str]]:
    """Submit every task, and a workflow every WORKFLOW_EVERY tasks, retrying through the Redis
    outage; idempotency keys make a task's retries safe. A workflow has no key: one whose first
    sending was written although its answer was lost runs beside its retry, not counted here."""
    local = threading.local()
    workflows: dict[int, str] = {}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=api_url, timeout=5)
        for _ in range(600):
            try:
                response = local.client.post(path, json=body)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if response.status_code == 202:
                answer: dict[str, Any] = response.json()
                return answer
            assert response.status_code == 503, response.text
            time.sleep(0.2)
        raise AssertionError(f"{body} could not be submitted")

    def submit(i: int) -> str:
        if i == TASKS // 4:
            chaos.scheduler_due.set()
        if i == TASKS // 2:
            chaos.redis_due.set()
        if i % WORKFLOW_EVERY == 0:
            workflows[i] = post("/workflows", workflow_body(i))["workflow_id"]
        task_id: str = post("/tasks", mixed_body(i))["task_id"]
        return task_id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(submit, range(TASKS))), workflows


def check_workflows(api_url: str, workflows: dict[int, str]) -> Counter[str]:
    """Each workflow's state, after asserting each one that succeeded has its result and each
    of its steps succeeded once."""
    outcome: Counter[str] = Counter()
    with httpx.Client(base_url=api_url, timeout=10) as api:
        for i, workflow_id in workflows.items():
            view = api.get(f"/workflows/{workflow_id}").json()
            outcome[view["state"]] += 1
            if view["state"] == "SUCCESS":
                assert view["result"] == workflow_result(i), view
                assert view["counts"]["SUCCESS"] == len(view["steps"]), view
    return outcome


def schedule_runs(client: redis.Redis, name: str) -> dict[str, Any]:
    """The schedule's runs: how many, their states, and the ticks between the first and the
    last that have no run (missed) or more than one (fired twice)."""
    ids = [
        i.decode()
        for i in client.zrange(records.schedule_index(name), 0, -1)
        if isinstance(i, bytes)
    ]
    with client.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hmget(records.record_key(task_id), "state", "idempotency_key")
        rows = pipe.execute()
    ticks = Counter(int(key.decode().rsplit(":", 1)[1]) for _, key in rows if key)
    first, last = min(ticks), max(ticks)
    return {
        "runs": len(ids),
        "states": dict(Counter(state.decode() if state else "MISSING" for state, _ in rows)),
        "ticks_missed": sum(1 for t in range(first, last + 1, 1000) if t not in ticks),
        "ticks_fired_twice": sum(1 for n in ticks.values() if n > 1),
    }


def test_soak(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    stack = make_stack(env=SOAK_ENV)
    redis_process = stack.start_redis(appendonly=True)
    stack.start_api()
    workers = [stack.start_worker(f"w{n}") for n in range(WORKERS)]
    every_second = {"name": "soak", "task": "add", "args": {"a": 1, "b": 1}, "interval_seconds": 1}
    assert httpx.post(f"{stack.api_url}/schedules", json=every_second).status_code == 201
    chaos = Chaos(stack, workers, redis_process, stack.start_scheduler())
    chaos_thread = threading.Thread(target=chaos.run, daemon=True)
    started = time.monotonic()
    chaos_thread.start()
    ids, workflows = submit_all(stack.api_url, chaos)
    submitted_in = time.monotonic() - started

    client = redis.Redis.from_url(stack.redis_url, socket_timeout=10)
    terminal_keys = [
        records.name_state_index(name, state)
        for name in MIXED
        for state in ("SUCCESS", "FAILURE", "REVOKED")
    ]

    def ended() -> int:
        try:
            return sum(int(client.zcard(key)) for key in terminal_keys)
        except redis.RedisError:
            return 0

    def workflows_open() -> int:
        try:
            with client.pipeline(transaction=False) as pipe:
                for workflow_id in workflows.values():
                    pipe.hget(records.workflow_key(workflow_id), records.WorkflowField.FINISHED_AT)
                return sum(1 for finished in pipe.execute() if finished is None)
        except redis.RedisError:
            return len(workflows)

    deadline = time.monotonic() + 1800
    while (ended() < TASKS or workflows_open()) and time.monotonic() < deadline:
        time.sleep(1)
    chaos.stop.set()
    chaos_thread.join(120)
    drained_in = time.monotonic() - started
    chaos.scheduler.stop()  # its last runs may still be queued: they are not counted below

    with client.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hmget(records.record_key(task_id), "state", "attempts", "retries")
        rows = pipe.execute()
    recovery = recovery_seconds(client, chaos.interrupted)
    states = Counter(row[0].decode() if row[0] else "MISSING" for row in rows)
    extra_attempts = sum(int(a) - 1 - int(r) for _, a, r in rows if a is not None)
    logs = [log.read_text(errors="replace") for log in stack.workdir.glob("w*.log")]
    successes = Counter(match.group(1) for text in logs for match in SUCCEEDED.finditer(text))
    reaped = sum(int(match.group(1)) for text in logs for match in REAPED.finditer(text))
    completed_twice = sorted(task_id for task_id, n in successes.items() if n > 1)
    workflow_states = check_workflows(stack.api_url, workflows)
    schedule = schedule_runs(client, "soak")
    report = {
        "tasks": TASKS,
        "distinct_ids": len(set(ids)),
        "states": dict(states),
        "worker_sigkills": chaos.kills,
        "worker_sigterms": chaos.terms,
        "redis_restarts": chaos.redis_restarts,
        "lost": TASKS - sum(states[s] for s in ("SUCCESS", "FAILURE", "REVOKED")),
        "completed_twice": len(completed_twice),
        "extra_executions_after_interruptions": extra_attempts,
        "queued_again_by_the_orphan_reaper": reaped,
        "killed_while_running": len(chaos.interrupted),
        "restarted_after_kill_seconds": recovery,
        "workflows": len(workflows),
        "workflow_states": dict(workflow_states),
        "scheduler_restarts": chaos.scheduler_restarts,
        "schedule": schedule,
        "submitted_in_seconds": round(submitted_in, 1),
        "all_ended_in_seconds": round(drained_in, 1),
    }
    print(json.dumps(report, indent=2))
    if os.environ.get("SOAK_REPORT"):
        Path(os.environ["SOAK_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")

    assert len(set(ids)) == TASKS
    assert states["SUCCESS"] == TASKS, states
    assert not completed_twice, completed_twice[:10]
    assert chaos.redis_restarts == 1
    assert workflow_states == {"SUCCESS": len(workflows)}, workflow_states
    assert chaos.scheduler_restarts == 1
    assert schedule["ticks_missed"] == schedule["ticks_fired_twice"] == 0, schedule
    assert schedule["runs"] >= drained_in - 30, schedule  # one a second, the end's slack
    # At least once: only an execution that a kill or a scale-down interrupted runs again,
    # each interruption hits at most the pool of one worker (2 processes), and the Redis kill
    # at most every pool at once.
    assert extra_attempts <= 2 * (chaos.kills + chaos.terms) + 2 * WORKERS * chaos.redis_restarts
    # Back after the heartbeat max age (5 s) and a restore round (1 s), not the visibility
    # timeout (60 s); the slack is for a loaded machine and the fetch.
    assert recovery and recovery["max"] < 30, recovery
