"""The record scripts one by one against a real redis-server: one server for the whole
directory, emptied before each test, so that these tests run in seconds and first."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import redis

from contracts import records
from contracts.messages import build_message
from contracts.records import State
from contracts.scripts import Named, Script
from tests.helpers import wait_for
from tests.tooling import require_binary

TASK_ID = "t1"
NOW = 1_700_000_000_000  # ms; scripts take the time as an argument


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = require_binary("redis-server", "apt-get install -y redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    workdir: Path = tmp_path_factory.mktemp("scripts-redis")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)

        def answers() -> bool:
            assert server.poll() is None, "redis-server exited"
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, 10, "redis-server to answer")
        yield port
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def r(redis_port: int) -> redis.Redis:
    client = redis.Redis(port=redis_port, decode_responses=True)
    client.flushall()
    return client


def run(r: redis.Redis, script: Script, **named: Named) -> Any:
    keys, args = script.bind(**named)
    return r.register_script(script.source)(keys=keys, args=args)


def message(task_id: str = TASK_ID, *, name: str = "sleep") -> str:
    """A task's message as the API writes it (the same one for the same task)."""
    return _message(task_id, name)


@cache
def _message(task_id: str, name: str) -> str:
    _, body = build_message(
        name, task_id, {"seconds": 0}, queue="default", priority=0, retries=0,
        published_at_ms=NOW, version=None,
    )  # fmt: skip
    return body.decode()


def tag_of(payload: str) -> str:
    tag: str = json.loads(payload)["properties"]["delivery_tag"]
    return tag


def indexes(r: redis.Redis, task_id: str = TASK_ID) -> set[str]:
    """Every listing index that holds the task."""
    return {k for k in r.scan_iter("kt:tasks*") if r.zscore(k, task_id) is not None}


def listed(state: State, name: str = "sleep") -> set[str]:
    """The indexes a task of `name` in `state` is listed in."""
    return {
        records.TASKS_INDEX,
        records.name_index(name),
        records.state_index(state),
        records.name_state_index(name, state),
    }
