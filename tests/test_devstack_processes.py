"""devstack's Stack: what its children inherit, how they get their ports, how a start fails."""

from __future__ import annotations

import gc
import itertools
import socket
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from devstack import processes
from devstack.processes import Stack, listener
from tests.helpers import wait_for


def test_an_exported_api_key_does_not_reach_a_test_stack(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETASKS_API_KEY", "from-the-developers-shell")
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    assert httpx.get(f"{stack.api_url}/tasks", timeout=5).status_code == 200


def test_the_api_port_is_held_from_the_start_and_served_from_that_socket(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", stack.api_port))
    stack.start_redis()
    stack.start_api()
    assert httpx.get(f"{stack.api_url}/livez", timeout=5).status_code == 200


def test_redis_moves_off_a_picked_port_taken_before_it_binds(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    picked = stack.redis_port
    with listener(picked):  # another process got there first
        stack.start_redis()
        assert stack.redis_port != picked
        assert redis.Redis.from_url(stack.redis_url, socket_timeout=5).ping()
    assert [p.name for p in stack.processes] == ["redis"]


def test_flower_moves_off_a_picked_port_taken_before_it_binds(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    picked = stack.flower_port
    with listener(picked):
        stack.start_flower()
        assert stack.flower_port != picked
        response = httpx.get(f"{stack.flower_url}/healthcheck", timeout=5)
        assert response.status_code == 200
    assert [p.name for p in stack.processes] == ["redis", "flower"]


def test_a_worker_moves_its_metrics_off_a_picked_port_taken_before_it_binds(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack()
    stack.start_redis()
    with listener(0) as taken:
        # The worker's metrics port is picked inside start_worker: make that pick the taken one.
        calls = itertools.count()
        pick = processes.free_port
        port = taken.getsockname()[1]
        monkeypatch.setattr(processes, "free_port", lambda: port if next(calls) == 0 else pick())
        worker = stack.start_worker()
    assert worker.metrics_url and f":{port}/" not in worker.metrics_url
    assert httpx.get(worker.metrics_url, timeout=5).status_code == 200
    assert [p.name for p in stack.processes] == ["redis", "worker"]


def test_processes_started_from_a_thread_outlive_the_thread(
    make_stack: Callable[..., Stack],
) -> None:
    """The soak test restarts Redis and workers from a thread; the parent-death signal would
    kill them when the thread that forked them ends."""
    stack = make_stack()
    starter = threading.Thread(target=stack.start_redis)
    starter.start()
    starter.join(30)
    task = Path(f"/proc/self/task/{starter.native_id}")
    wait_for(lambda: not task.exists(), 10, "the thread to be gone")
    assert redis.Redis.from_url(stack.redis_url, socket_timeout=5).ping()
    assert stack.processes[0].alive()


def test_a_child_that_dies_while_starting_fails_the_start_at_once_with_its_output(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="KUBETASKS_TOMBSTONE_TTL_SECONDS"):
        stack.start_api(timeout=20, KUBETASKS_TOMBSTONE_TTL_SECONDS="1")
    assert time.monotonic() - started < 10  # it did not sit out the timeout


def test_the_stack_closes_the_log_files_it_opens(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        stack.start_redis()
        stack.start_api()
        gc.collect()  # a file left to the garbage collector says so now
    assert not [w for w in caught if str(stack.workdir) in str(w.message)]
    opened = {Path(f.path) for f in psutil.Process().open_files()}
    assert not {path for path in opened if stack.workdir in path.parents}


def test_connections_accepted_on_the_api_listener_send_without_delay() -> None:
    # uvicorn --fd leaves TCP_NODELAY off; a response then waits on delayed ACKs (~40 ms).
    with listener(0) as sock, socket.create_connection(sock.getsockname()):
        accepted, _ = sock.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
