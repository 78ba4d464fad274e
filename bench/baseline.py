"""The ceiling in the same run on the same Redis: bare Celery and redis-benchmark."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from typing import Any

import redis

from bench.config import Config
from bench.env import launch, wait_log
from bench.stats import summary
from devstack.processes import Process, Stack, wait_until

UNACKED = "unacked"


def start_bare_worker(stack: Stack, **env: str) -> Process:
    argv = [
        sys.executable, "-m", "celery", "-A", "bench.bare_app", "worker",
        "--loglevel", "INFO", "--hostname", "bare@%h", "--pool", "prefork",
        "--concurrency", "2", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    env = stack.env(BENCH_BARE_BROKER=stack.redis_url, **env)
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


def pending(r: redis.Redis) -> int:
    from bench.bare_app import QUEUE

    pipe = r.pipeline(transaction=False)
    pipe.llen(QUEUE)
    pipe.hlen(UNACKED)
    ready, unacked = pipe.execute()
    return int(ready) + int(unacked)


def use_redis(stack: Stack) -> None:
    """Point this process's `delay()` calls at the run's Redis."""
    from bench.bare_app import app

    app.conf.broker_url = stack.redis_url


def close() -> None:
    from bench.bare_app import app

    app.pool.force_close_all()


def submit_rate(r: redis.Redis, cfg: Config) -> dict[str, Any]:
    """`delay()` loops with no worker running: submits/s."""
    from bench.bare_app import QUEUE

    runs = []
    for _ in range(cfg.repeats):
        runs.append(cfg.bare_submit_tasks / _delay_loop(cfg.bare_submit_tasks))
        r.delete(QUEUE)
    return summary(runs)


def warm_up(r: redis.Redis) -> None:
    """Pool processes import, connections open."""
    _delay_loop(50)
    wait_until(lambda: pending(r) == 0, 60, "the bare warm-up to drain")


def drain_once(r: redis.Redis, n: int) -> float:
    """Tasks/s for n `delay()` calls until the bare worker has acknowledged them all."""
    start = time.perf_counter()
    _delay_loop(n)
    wait_until(lambda: pending(r) == 0, 300, "the bare Celery drain", 0.02)
    return n / (time.perf_counter() - start)


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
