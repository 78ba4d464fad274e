"""The stack under test (devstack's `Stack`), its Redis, processes and the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from contracts import records
from contracts.catalogue import QUEUES
from contracts.records import State
from devstack.processes import Process, Stack, wait_until
from worker.catalogue import specs

TASKS = specs()

# Short shutdowns so that stopping the worker between phases takes seconds. No Flower runs, so
# the worker sends no task events, as the chart configures it without Flower; the bare Celery
# baseline sends none either.
BENCH_ENV = {
    "KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT": "2",
    "KUBETASKS_WORKER_TASK_EVENTS": "false",
}


def make_stack(workdir: Path) -> Stack:
    workdir.mkdir(parents=True, exist_ok=True)
    return Stack(workdir=workdir, extra_env=dict(BENCH_ENV))


def redis_client(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis_url, socket_timeout=120)


def all_queue_lists() -> list[str]:
    return [key for q in QUEUES for key in records.queue_lists(q)]


def drop_queued(r: redis.Redis) -> None:
    """Forget every waiting kubetasks task: its message and its record, so that no PENDING
    record is left without a message (the later phases would share Redis with them, and the
    orphan reaper would queue them again)."""
    r.delete(*all_queue_lists())
    pending = records.state_index(State.PENDING)
    while ids := [i.decode() for i in r.zrange(pending, 0, 9_999) if isinstance(i, bytes)]:
        pipe = r.pipeline(transaction=False)
        pipe.delete(*(records.record_key(i) for i in ids))
        for index in _listings():
            pipe.zrem(index, *ids)
        pipe.execute()


def _listings() -> list[str]:
    return [
        records.TASKS_INDEX,
        *(records.state_index(state) for state in State),
        *(records.name_index(name) for name in TASKS),
        *(records.name_state_index(name, state) for name in TASKS for state in State),
    ]


def ready_messages(r: redis.Redis) -> int:
    pipe = r.pipeline(transaction=False)
    for key in all_queue_lists():
        pipe.llen(key)
    return sum(int(n) for n in pipe.execute())


def used_memory(r: redis.Redis) -> int:
    info: dict[str, Any] = r.info("memory")
    return int(info["used_memory"])


def stop(stack: Stack, process: Process, timeout: float = 30) -> None:
    process.stop(timeout=timeout)
    if process in stack.processes:
        stack.processes.remove(process)


def launch(stack: Stack, name: str, argv: list[str], env: dict[str, str]) -> Process:
    """Start a process of our own and let the stack stop it with the rest."""
    log = stack.workdir / f"{name}.log"
    popen = subprocess.Popen(
        argv,
        cwd=stack.workdir,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    process = Process(name, popen, log)
    stack.processes.append(process)
    return process


def wait_log(process: Process, pattern: str, timeout: float) -> None:
    wait_until(
        lambda: re.search(pattern, process.output()) is not None or not process.alive(),
        timeout,
        f"{process.name} to log {pattern!r}",
    )
    if not process.alive():
        raise RuntimeError(f"{process.name} exited:\n{process.output()[-3000:]}")


def _command_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    packages = ("fastapi", "uvicorn", "uvloop", "httptools", "celery", "kombu", "redis",
                "hiredis", "orjson", "pydantic", "prometheus-client")  # fmt: skip
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": sys.version.split()[0],
        "redis_server": _command_version(["redis-server", "--version"]),
        "wrk": _command_version(["wrk", "-v"]),
        "packages": versions,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()
