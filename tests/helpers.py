"""A typed HTTP client for the API with condition-and-deadline waits."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import httpx

from devstack.processes import Process, Stack

TERMINAL = {"SUCCESS", "FAILURE", "REVOKED"}


class ApiClient(httpx.Client):
    def submit(self, name: str, args: dict[str, Any] | None = None, **extra: Any) -> str:
        response = self.post("/tasks", json={"name": name, "args": args or {}, **extra})
        assert response.status_code == 202, response.text
        task_id: str = response.json()["task_id"]
        return task_id

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_task(
        self,
        task_id: str,
        until: Callable[[dict[str, Any]], bool] | Collection[str] = TERMINAL,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Poll the task until the condition holds; fail with its last view at the deadline."""
        check = until if callable(until) else (lambda t: t["state"] in until)
        deadline = time.monotonic() + timeout
        view = self.task(task_id)
        while not check(view):
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} never reached {until}: {view}")
            time.sleep(0.05)
            view = self.task(task_id)
        return view

    def wait_known(self, task_id: str, timeout: float = 10) -> dict[str, Any]:
        """Wait until the task exists (one a Celery producer queued gets its record when a
        worker receives it); its first view."""
        wait_for(lambda: self.get(f"/tasks/{task_id}").status_code == 200, timeout, task_id)
        return self.task(task_id)

    def queue(self, name: str) -> dict[str, Any]:
        queues = self.get("/queues").json()["queues"]
        found: dict[str, Any] = next(q for q in queues if q["name"] == name)
        return found


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.05)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, **kwargs: Any) -> Samples:
    """Every sample of a Prometheus exposition, keyed by (name, labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url, timeout=5, **kwargs)
    response.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def run_flaky_as(function: str) -> str:
    """Setup code for `programmatic_worker`: the flaky task runs `function(args, ctx)` instead."""
    return (
        "import dataclasses\n"
        "flaky = app.tasks['flaky']\n"
        "flaky.definition = dataclasses.replace(\n"
        f"    flaky.definition, fn={function}, takes_model=True, takes_context=True)\n"
    )


def programmatic_worker(
    stack: Stack,
    name: str,
    setup: str = "",
    *,
    concurrency: int = 2,
    wait_ready: bool = True,
    **env: str,
) -> Process:
    """A worker started as Celery's API and test helpers start one (`app.WorkController`,
    which `celery.contrib.testing.worker.start_worker` uses), not by the `celery worker` command:
    no `celeryd_init` signal, no banner. `setup` runs first (test-only changes such as a task
    implementation that raises). Waits until it is ready, unless told not to."""
    state = stack.workdir / name
    code = (
        "import socket\n"
        "from worker.app import app\n"
        "app.log.setup(loglevel='INFO')\n"
        f"{setup}\n"
        f"worker = app.WorkController(hostname='{name}@' + socket.gethostname(),"
        f" pool_cls='prefork', concurrency={concurrency})\n"
        "worker.start()\n"
        "raise SystemExit(worker.exitcode)\n"
    )
    worker_env = stack.env(
        KUBETASKS_WORKER_HEARTBEAT_FILE=str(state / "heartbeat"),
        KUBETASKS_WORKER_READY_FILE=str(state / "ready"),
        KUBETASKS_WORKER_METRICS_PORT="0",
        PROMETHEUS_MULTIPROC_DIR=str(state / "metrics"),
        **env,
    )
    process = stack.launch(name, [sys.executable, "-c", code], worker_env)
    if wait_ready:
        wait_for(lambda: (state / "ready").exists() or not process.alive(), 30, f"{name} ready")
        assert process.alive(), process.output()[-3000:]
    return process


def kill_tree(process: Process) -> None:
    """SIGKILL a worker and its pool processes at once, as when a node or pod dies."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    for pid in [process.pid, *map(int, children)]:
        os.kill(pid, signal.SIGKILL)
    process.popen.wait(10)
