"""A real Prometheus scrapes the running stack; Flower is behind basic auth under its prefix."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devstack.processes import ROOT, Process, Stack, free_port, http_ok, wait_until
from tests.conftest import client_for
from tests.tooling import require_binary


def celery_control(stack: Stack, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "control", *args],
        cwd=ROOT,
        env=stack.env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def value(self, query: str) -> float | None:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5).json()
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait(self, query: str, check: Callable[[float], bool], timeout: float) -> float:
        seen: list[float | None] = []

        def holds() -> bool:
            seen.append(self.value(query))
            return seen[-1] is not None and check(seen[-1])

        wait_until(holds, timeout, f"{query} (last values {seen[-5:]})", interval=0.5)
        last = seen[-1]
        assert last is not None
        return last

    def targets(self) -> dict[str, str]:
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=5).json()
        return {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}


@pytest.fixture
def observed_stack(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> Iterator[tuple[Stack, Process, Prometheus]]:
    binary = require_binary("prometheus", "apt-get install -y prometheus")
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker()
    stack.start_flower()
    assert worker.metrics_url
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "kubetasks-api", "static_configs": [{"targets": [stack.api_url[7:]]}]},
            {
                "job_name": "kubetasks-worker",
                "static_configs": [{"targets": [worker.metrics_url[7:].removesuffix("/metrics")]}],
            },
            {
                "job_name": "kubetasks-flower",
                "metrics_path": "/flower/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{stack.flower_port}"]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/-/ready"), 20, "Prometheus to be ready")
        yield stack, worker, Prometheus(url)
    finally:
        server.terminate()
        server.wait(20)


def test_prometheus_sees_the_backlog_fill_while_paused_and_drain_after(
    observed_stack: tuple[Stack, Process, Prometheus],
) -> None:
    stack, _, prometheus = observed_stack
    backlog = 'max by (queue) (kubetasks_queue_backlog{queue="default"})'
    age = 'max(kubetasks_queue_oldest_message_age_seconds{queue="default"})'
    prometheus.wait(backlog, lambda v: v == 0, 30)

    celery_control(stack, "cancel_consumer", "default")
    with client_for(stack) as api:
        for _ in range(50):
            api.submit("sleep", {"seconds": 0})
    prometheus.wait(backlog, lambda v: v == 50, 30)
    first_age = prometheus.wait(age, lambda v: v > 0, 15)
    prometheus.wait(age, lambda v: v >= first_age + 2, 15)

    celery_control(stack, "add_consumer", "default")
    prometheus.wait(backlog, lambda v: v == 0, 60)
    prometheus.wait(
        'sum(kubetasks_worker_tasks_completed_total{task="sleep",outcome="succeeded"})',
        lambda v: v == 50,
        15,
    )
    assert prometheus.targets() == {
        "kubetasks-api": "up",
        "kubetasks-worker": "up",
        "kubetasks-flower": "up",
    }
    prometheus.wait("sum(flower_events_total)", lambda v: v > 0, 15)


def test_flower_needs_basic_auth_except_for_probes_and_metrics(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(flower_auth="ops:s3cret")
    stack.start_redis()
    stack.start_worker()
    stack.start_flower()
    assert httpx.get(f"{stack.flower_url}/", timeout=5).status_code == 401
    assert httpx.get(f"{stack.flower_url}/", auth=("ops", "wrong"), timeout=5).status_code == 401
    auth = ("ops", "s3cret")
    assert httpx.get(f"{stack.flower_url}/", auth=auth, timeout=5).status_code == 200
    assert httpx.get(f"{stack.flower_url}/api/workers", timeout=5).status_code == 401
    assert httpx.get(f"{stack.flower_url}/healthcheck", timeout=5).status_code == 200
    assert httpx.get(f"{stack.flower_url}/metrics", timeout=5).status_code == 200
    # Flower reads queue lengths through its own Redis client, chosen by the broker URL's scheme.
    lengths = httpx.get(f"{stack.flower_url}/api/queues/length", auth=auth, timeout=5)
    assert lengths.status_code == 200, lengths.text
    assert {q["name"] for q in lengths.json()["active_queues"]} >= {"default"}
