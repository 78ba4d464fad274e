"""One benchmark run: start the stack, measure every phase in order, stop everything."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench import baseline, client, drain, growth, live, memory, profile, redis_cost, wrk
from bench.config import SUBMIT_BODY, Config
from bench.env import drop_queued, machine, make_stack, redis_client, stop
from bench.stats import summary
from contracts.messages import build_message
from devstack.processes import Process, Stack, wait_until
from worker.catalogue import specs

TASKS = specs()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _watchdog(seconds: int) -> None:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"the benchmark exceeded its {seconds} s limit")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


def wrk_series(
    stack: Stack, cfg: Config, url: str, script: str, between: Callable[[], object]
) -> dict[str, Any]:
    """A warm-up, then `repeats` wrk runs; `between` runs after each (e.g. drop the backlog)."""
    wrk.run(url, script, stack.workdir, seconds=cfg.warmup_seconds,
            connections=cfg.connections, threads=cfg.wrk_threads)  # fmt: skip
    between()
    runs = []
    for _ in range(cfg.repeats):
        runs.append(wrk.run(url, script, stack.workdir, seconds=cfg.wrk_seconds,
                            connections=cfg.connections, threads=cfg.wrk_threads))  # fmt: skip
        between()
    keys = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "non2xx", "socket_errors")
    return {k: summary([run[k] for run in runs]) for k in keys}


def _wait_success(stack: Stack, task_id: str) -> None:
    def done() -> bool:
        return b'"state":"SUCCESS"' in client.get(stack.api_port, f"/tasks/{task_id}")

    wait_until(done, 60, f"task {task_id} to succeed")


def _submit_one(stack: Stack) -> str:
    statuses = client.post_many(stack.api_port, "/tasks", SUBMIT_BODY, 1, 1)
    assert statuses.get(202) == 1, statuses
    newest = json.loads(client.get(stack.api_port, "/tasks?limit=1"))
    task_id: str = newest["items"][0]["task_id"]
    return task_id


def measure(stack: Stack, cfg: Config, results: dict[str, Any]) -> None:
    stack.start_redis()
    r = redis_client(stack)
    api = stack.start_api()
    results["memory"] = {"api_idle": memory.tree(api.pid)}
    submit_url = f"{stack.api_url}/tasks"

    log("redis-benchmark -t lpush,get")
    results["redis_benchmark"] = baseline.redis_benchmark(stack, r, cfg)

    log("submit over HTTP, consumption paused (no worker running)")
    results["submit_paused"] = wrk_series(
        stack, cfg, submit_url, wrk.POST_SCRIPT, lambda: drop_queued(r)
    )
    results["memory"]["api_after_submits"] = memory.tree(api.pid)
    if cfg.profile:
        log("py-spy on the API during submits (paused)")
        results["profile_submit"] = _profile_wrk(stack, cfg, api, submit_url, wrk.POST_SCRIPT)
        drop_queued(r)

    log("bare Celery: delay() loop with no worker")
    baseline.use_redis(stack)
    bare: dict[str, Any] = {"submit_per_s": baseline.submit_rate(r, cfg)}
    results["bare_celery"] = bare

    log("starting a bare Celery worker and the kubetasks worker (prefork 2 each)")
    bare_worker = baseline.start_bare_worker(stack)
    worker = stack.start_worker("worker", concurrency=2)
    bare["worker_memory_idle"] = memory.tree(bare_worker.pid)
    results["memory"]["worker_idle"] = memory.tree(worker.pid)

    log(f"drains of {cfg.drain_tasks} no-op tasks, alternating: bare Celery, kubetasks over HTTP")
    bare_drain, results["drain"] = drain.drains(stack, r, cfg)
    bare.update(bare_drain, worker_memory_loaded=memory.tree(bare_worker.pid))
    stop(stack, bare_worker)
    baseline.close()
    if cfg.profile:
        log("py-spy on the worker tree during a drain")
        results["profile_drain"] = profile.record(
            worker.pid, stack.workdir / "profile-drain", cfg.profile_seconds,
            lambda: drain.drain_once(stack, r, cfg.drain_tasks, cfg.connections),
            subprocesses=True,
        )  # fmt: skip

    finished = _submit_one(stack)
    _wait_success(stack, finished)
    template: dict[bytes, bytes] = r.hgetall(f"kt:task:{finished}")  # type: ignore[assignment]
    status_url = f"{stack.api_url}/tasks/{finished}"
    log("status read over HTTP (a finished task)")
    results["status_read"] = wrk_series(stack, cfg, status_url, wrk.GET_SCRIPT, lambda: None)
    if cfg.profile:
        log("py-spy on the API during status reads")
        results["profile_status"] = _profile_wrk(stack, cfg, api, status_url, wrk.GET_SCRIPT)

    log("submit over HTTP with the worker consuming")
    results["submit_consuming"] = wrk_series(
        stack, cfg, submit_url, wrk.POST_SCRIPT, lambda: drop_queued(r)
    )
    wait_until(lambda: int(r.hlen("unacked")) == 0, 60, "the worker to finish its tasks")
    results["memory"]["api_loaded"] = memory.tree(api.pid)
    results["memory"]["worker_loaded"] = memory.tree(worker.pid)
    worker.stop(timeout=30)

    log(f"growth: records {cfg.growth_sizes}")
    results["growth"] = growth.growth(stack, template, cfg)
    log(f"scrape with {cfg.queued_messages:,} queued messages")
    _, message = build_message("sleep", "0" * 32, {"seconds": 0, "note": ""},
                               queue="default", priority=0, retries=0,
                               published_at_ms=int(time.time() * 1000),
                               version=None)  # fmt: skip
    results["scrape"] = growth.scrape(stack, r, message, cfg)
    log("live updates and pickup, on a fresh API process and an emptied Redis")
    stop(stack, api)
    results["live"] = live.measure(stack, r, live.QUICK if cfg.quick else live.Sizes())
    r.close()
    log("what a task costs Redis, ours against bare Celery with a result backend (own stack)")
    results["redis_cost"] = redis_cost.in_subprocess(cfg.redis_cost_tasks, rounds=3)


def _profile_wrk(stack: Stack, cfg: Config, api: Process, url: str, script: str) -> dict[str, Any]:
    name = "profile-submit" if script == wrk.POST_SCRIPT else "profile-status"
    return profile.record(
        api.pid, stack.workdir / name, cfg.profile_seconds,
        lambda: wrk.run(url, script, stack.workdir, seconds=cfg.profile_seconds + 1,
                        connections=cfg.connections, threads=cfg.wrk_threads),
    )  # fmt: skip


def run(cfg: Config, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"config": cfg.__dict__, "machine": machine()}
    stack = make_stack(workdir)
    began = time.monotonic()
    _watchdog(cfg.time_limit_seconds)
    try:
        measure(stack, cfg, results)
    finally:
        signal.alarm(0)
        log("stopping the stack")
        stack.stop_all(timeout=30)
    results["elapsed_seconds"] = time.monotonic() - began
    return results
