"""The `kubetasks` command line (client/kubetasks_client/cli.py), the installed command against a
real stack: arguments typed by the catalogue, every command, its exit codes, and the live
progress bar as a person sees it on a terminal (a pty)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devstack.processes import Stack
from tests.helpers import ApiClient

KUBETASKS = str(Path(sys.executable).parent / "kubetasks")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def run(stack: Stack, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBETASKS, "--url", stack.api_url, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_submit_types_key_value_arguments_by_the_catalogue_and_waits_for_the_result(
    stack: Stack,
) -> None:
    # `a` and `b` are numbers in add's schema: sent as strings they would be a 422.
    view = as_json(run(stack, "-o", "json", "submit", "add", "a=2", "b=3.5", "--wait"))
    assert view["state"] == "SUCCESS" and view["result"] == 5.5
    # A string argument stays a string, though it reads as JSON.
    view = as_json(run(stack, "-o", "json", "submit", "sleep", "seconds=0", "note=42", "--wait"))
    assert view["result"] == "42"
    table = run(stack, "submit", "add", "--json", '{"a": 1, "b": 1}', "--wait")
    assert table.returncode == 0 and table.stdout.strip() == "2", table


def test_bad_arguments_exit_2_before_a_request_and_3_with_the_apis_field_message(
    stack: Stack,
) -> None:
    typed = run(stack, "submit", "sleep", "seconds=soon")
    assert typed.returncode == 2 and "seconds takes number" in typed.stderr, typed
    refused = run(stack, "submit", "sleep", "seconds=-1")
    assert refused.returncode == 3, refused
    assert refused.stderr == "args.seconds: -1 is less than the minimum of 0\n", refused.stderr
    unknown = run(stack, "get", "no-such-task")
    assert unknown.returncode == 3 and "task_not_found" in unknown.stderr, unknown


def test_a_task_that_fails_exits_1_with_its_error(stack: Stack) -> None:
    failed = run(stack, "submit", "thumbnail", "image_base64=bm90IGFuIGltYWdl", "--wait")
    assert failed.returncode == 1, failed
    assert "FAILURE" in failed.stderr and "not a readable image" in failed.stderr


def test_ls_get_cancel_and_queues(stack: Stack, api: ApiClient) -> None:
    task_id = run(stack, "submit", "sleep", "seconds=0", "--countdown", "600").stdout.strip()
    listed = as_json(run(stack, "-o", "json", "ls", "--state", "pending", "--name", "sleep"))
    assert task_id in [task["task_id"] for task in listed]
    assert as_json(run(stack, "-o", "json", "get", task_id))["state"] == "PENDING"
    table = run(stack, "get", task_id)
    assert table.returncode == 0 and task_id in table.stdout and "PENDING" in table.stdout
    assert as_json(run(stack, "-o", "json", "cancel", task_id))["state"] == "REVOKED"
    assert api.get(f"/tasks/{task_id}").json()["state"] == "REVOKED"
    again = run(stack, "cancel", task_id)
    assert again.returncode == 0, again  # cancelling a revoked task changes nothing
    queues = as_json(run(stack, "-o", "json", "queues"))
    assert "default" in [queue["name"] for queue in queues["queues"]]
    dead = as_json(run(stack, "-o", "json", "deadletters", "ls"))
    assert isinstance(dead, list)
    missing = run(stack, "deadletters", "requeue", task_id)
    assert missing.returncode == 3 and "dead_letter_not_found" in missing.stderr, missing


def test_an_unreachable_api_exits_5(stack: Stack) -> None:
    gone = subprocess.run(
        [KUBETASKS, "--url", "http://127.0.0.1:9", "get", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert gone.returncode == 5 and "cannot reach the API" in gone.stderr, gone


def test_the_progress_bar_advances_on_a_terminal_while_a_task_runs(stack: Stack) -> None:
    """A 10 s task followed with --wait under a pty: the screen shows the task's own reports
    one after another while it runs (the bar's count and message), then the result."""
    leader, follower = pty.openpty()
    argv = [KUBETASKS, "--url", stack.api_url, "submit", "sleep", "seconds=10", "note=hi", "--wait"]
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    process = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    screen = b""
    seen: list[tuple[float, str]] = []  # (when, report) as each first appears
    began = time.monotonic()
    try:
        while time.monotonic() - began < 60:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the command ended and closed the terminal
                break
            screen += chunk
            for report in re.findall(rb"slept \d+ of 10 s", ANSI.sub(b"", screen)):
                if report.decode() not in [r for _, r in seen]:
                    seen.append((time.monotonic() - began, report.decode()))
        assert process.wait(timeout=10) == 0
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    text = ANSI.sub(b"", screen).decode(errors="replace")
    reports = [r for _, r in seen]
    assert reports[:3] == ["slept 0 of 10 s", "slept 1 of 10 s", "slept 2 of 10 s"], reports
    # Drawn live: the reports reached the screen over the task's run, not all at its end.
    assert seen[-1][0] - seen[0][0] >= 5, seen
    assert re.search(r"\b3/10\b", text) and re.search(r"\b10/10\b", text), text[-500:]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert "SUCCESS" in text and lines[-1] == '"hi"', lines[-3:]
