"""The `helm test` hook's script, run against a stand-in API on 127.0.0.1 for the answers a
real stack does not give on demand, and against a real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from devstack.processes import Stack

from .rendering import CHART_DIR

SCRIPT = CHART_DIR / "scripts" / "helm_test.py"
API_KEY = "test-key"


class FakeApi(BaseHTTPRequestHandler):
    """Accepts one sleep task, reports it pending once, then in `final_state`."""

    final_state: ClassVar[str] = "SUCCESS"
    polls: ClassVar[int] = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        if self.headers.get("X-API-Key") != API_KEY:
            self.reply(401, {"detail": "missing API key"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body == {"name": "sleep", "args": {"seconds": 0}}
        self.reply(202, {"task_id": "t-1", "state": "PENDING"})

    def do_GET(self) -> None:
        if self.headers.get("X-API-Key") != API_KEY or self.path != "/tasks/t-1":
            self.reply(404, {"detail": "not found"})
            return
        type(self).polls += 1
        self.reply(
            200, {"task_id": "t-1", "state": "PENDING" if self.polls < 2 else self.final_state}
        )


@pytest.fixture()
def api_url() -> Iterator[str]:
    FakeApi.polls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_script(
    url: str, api_key: str = API_KEY, timeout: str = "10"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBETASKS_TEST_URL": url,
        "KUBETASKS_TEST_API_KEY": api_key,
        "KUBETASKS_TEST_TIMEOUT_SECONDS": timeout,
    }
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )


def test_passes_when_the_task_succeeds(api_url: str) -> None:
    result = run_script(api_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reached SUCCESS" in result.stdout


def test_fails_when_the_task_fails(api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeApi, "final_state", "FAILURE")
    result = run_script(api_url)
    assert result.returncode == 1
    assert "ended in FAILURE" in result.stdout


def test_fails_at_the_deadline_when_the_api_is_unreachable() -> None:
    result = run_script("http://127.0.0.1:9", timeout="1")
    assert result.returncode == 1
    assert "could not submit" in result.stdout


def test_passes_against_the_real_stack_and_fails_without_a_worker(
    make_stack: Callable[..., Stack],
) -> None:
    """The same script against real processes (redis-server, the API, a worker), with the API
    key the chart gives it; then with no worker to run the task."""
    stack = make_stack(api_key=API_KEY)
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker()
    passed = run_script(stack.api_url, timeout="30")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "reached SUCCESS" in passed.stdout

    worker.stop()
    stuck = run_script(stack.api_url, timeout="3")
    assert stuck.returncode == 1
    assert "still PENDING at the deadline" in stuck.stdout
