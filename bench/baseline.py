"""The ceiling in the same run on the same Redis: bare Celery and redis-benchmark."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from typing import Any

import redis

from bench import memory
from bench.config import Config
from bench.env import launch, stop, wait_log
from bench.stats import summary
from devstack.processes import Process, Stack, wait_until

UNACKED = "unacked"


def start_bare_worker(stack: Stack) -> Process:
    argv = [
        sys.executable, "-m", "celery", "-A", "bench.bare_app", "worker",
        "--loglevel", "INFO", "--hostname", "bare@%h", "--pool", "prefork",
        "--concurrency", "2", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    env = stack.env(BENCH_BARE_BROKER=stack.redis_url)
    process = launch(stack, "bare-worker", argv, env)
    wait_log(process, r"bare@\S+ ready\.", 60)
    return process


def _delay_loop(n: int) -> float:
    """Seconds to call `delay()` n times from this process."""
    from bench.bare_app import noop

    start = time.perf_counter()
    for _ in range(n):
        noop.delay()
    return time.perf_counter() - start


def _bare_pending(r: redis.Redis) -> int:
    from bench.bare_app import QUEUE

    pipe = r.pipeline(transaction=False)
    pipe.llen(QUEUE)
    pipe.hlen(UNACKED)
    ready, unacked = pipe.execute()
    return int(ready) + int(unacked)


def bare_celery(stack: Stack, r: redis.Redis, cfg: Config) -> dict[str, Any]:
    """`delay()` loop with no worker (submit/s), then drains with 2 prefork processes."""
    from bench.bare_app import QUEUE, app

    app.conf.broker_url = stack.redis_url
    submit = []
    for _ in range(cfg.repeats):
        seconds = _delay_loop(cfg.bare_submit_tasks)
        submit.append(cfg.bare_submit_tasks / seconds)
        r.delete(QUEUE)
    worker = start_bare_worker(stack)
    idle = memory.tree(worker.pid)
    drain = []
    try:
        _delay_loop(50)  # warm up: pool processes import, connections open
        wait_until(lambda: _bare_pending(r) == 0, 60, "the bare warm-up to drain")
        for _ in range(cfg.repeats):
            start = time.perf_counter()
            _delay_loop(cfg.drain_tasks)
            wait_until(lambda: _bare_pending(r) == 0, 300, "the bare Celery drain", 0.02)
            drain.append(cfg.drain_tasks / (time.perf_counter() - start))
        loaded = memory.tree(worker.pid)
    finally:
        stop(stack, worker)
    app.pool.force_close_all()
    return {
        "submit_per_s": summary(submit),
        "drain_per_s": summary(drain),
        "worker_memory_idle": idle,
        "worker_memory_loaded": loaded,
    }


def redis_benchmark(stack: Stack, r: redis.Redis, cfg: Config) -> dict[str, Any]:
    """`redis-benchmark -t lpush,get` with 32 clients; requests/s per command."""
    runs: dict[str, list[float]] = {"LPUSH": [], "GET": []}
    p50: dict[str, list[float]] = {"LPUSH": [], "GET": []}
    for _ in range(cfg.repeats):
        argv = [
            "redis-benchmark", "-h", "127.0.0.1", "-p", str(stack.redis_port),
            "-c", str(cfg.connections), "-n", str(cfg.redis_benchmark_requests),
            "-t", "lpush,get", "--csv",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
        for row in csv.DictReader(io.StringIO(done.stdout)):
            test = row["test"].split()[0]
            if test in runs:
                runs[test].append(float(row["rps"]))
                p50[test].append(float(row.get("p50_latency_ms") or 0))
        r.delete("mylist", "key:__rand_int__")
    return {
        test: {"rps": summary(values), "p50_ms": summary(p50[test])}
        for test, values in runs.items()
    }
