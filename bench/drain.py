"""End-to-end drain over HTTP: N no-op tasks submitted to the API until every one is SUCCESS."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from bench import baseline, client
from bench.config import SUBMIT_BODY, Config
from bench.env import used_memory
from bench.stats import summary
from contracts.records import state_index
from devstack.processes import Stack, wait_until

SUCCESS_INDEX = state_index("SUCCESS")


def _backlog(stack: Stack) -> int:
    """Ready plus in-flight over every queue, from GET /queues (one Lua call, no bodies read)."""
    view = json.loads(client.get(stack.api_port, "/queues"))
    return sum(int(q["backlog"]) for q in view["queues"]) + int(view["delayed"])


def drain_once(stack: Stack, r: redis.Redis, n: int, connections: int) -> dict[str, Any]:
    succeeded = int(r.zcard(SUCCESS_INDEX))
    memory_before = used_memory(r)
    start = time.perf_counter()
    statuses = client.post_many(stack.api_port, "/tasks", SUBMIT_BODY, n, connections)
    submitted_s = time.perf_counter() - start
    if statuses.get(202) != n:
        raise RuntimeError(f"drain submits answered {dict(statuses)}")
    deadline = start + 300
    while _backlog(stack) > 0 or int(r.zcard(SUCCESS_INDEX)) < succeeded + n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{n} tasks did not drain within 300 s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    return {
        "tasks_per_s": n / elapsed,
        "submit_per_s": n / submitted_s,
        "bytes_per_task": (used_memory(r) - memory_before) / n,
    }


def drains(stack: Stack, r: redis.Redis, cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bare Celery's drain and ours, alternating, both workers up (the idle one waits on its
    own queue): the load of these shared cores drifts over minutes, and each pair sees the same.
    Pairs alternate which goes first (bare-ours, ours-bare, ...), so that neither always runs in
    the other's wake. Returns (bare, ours)."""
    baseline.warm_up(r)
    client.post_many(stack.api_port, "/tasks", SUBMIT_BODY, 50, 8)
    wait_until(lambda: _backlog(stack) == 0, 60, "the warm-up tasks to drain")
    bare: list[float] = []
    ours: list[dict[str, Any]] = []
    for pair in range(cfg.drain_pairs):
        if pair % 2:
            ours.append(drain_once(stack, r, cfg.drain_tasks, cfg.connections))
        bare.append(baseline.drain_once(r, cfg.drain_tasks))
        if not pair % 2:
            ours.append(drain_once(stack, r, cfg.drain_tasks, cfg.connections))
    return {"drain_per_s": summary(bare)}, {
        "tasks": cfg.drain_tasks,
        "tasks_per_s": summary([x["tasks_per_s"] for x in ours]),
        "submit_per_s": summary([x["submit_per_s"] for x in ours]),
        "bytes_per_task": summary([x["bytes_per_task"] for x in ours]),
        "ratio_to_bare": summary([x["tasks_per_s"] / b for x, b in zip(ours, bare, strict=True)]),
    }
