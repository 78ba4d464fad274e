"""Worker metrics in prometheus-client's multiprocess mode, served by the main process.

Pool children write their samples to files in PROMETHEUS_MULTIPROC_DIR; the main process sums
them per scrape. The directory is set before prometheus_client is imported (it decides the
storage at import), wiped when the worker starts, and a child that died has its live gauges
dropped. No label carries a hostname or task id.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/kubetasks/metrics")

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

LABELS = ["task", "queue"]
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

STARTED = Counter("kubetasks_worker_tasks_started", "Task executions started.", LABELS)
COMPLETED = Counter(
    "kubetasks_worker_tasks_completed",
    "Task executions ended, by outcome: succeeded, failed, retried, revoked, dead_lettered.",
    [*LABELS, "outcome"],
)
RUNTIME = Histogram(
    "kubetasks_worker_task_runtime_seconds",
    "Time from start to end of one execution.",
    LABELS,
    buckets=DURATION_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "kubetasks_worker_task_queue_wait_seconds",
    "Time from publish (or from the end of a countdown) to start.",
    LABELS,
    buckets=DURATION_BUCKETS,
)
REJECTED = Counter(
    "kubetasks_tasks_rejected",
    "Messages from Celery producers refused before running, by reason: unknown_task,"
    " invalid_arguments.",
    ["reason"],
)
IN_PROGRESS = Gauge(
    "kubetasks_worker_tasks_in_progress",
    "Executions running now.",
    LABELS,
    multiprocess_mode="livesum",
)


def multiproc_dir() -> Path:
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def reset_and_serve(port: int) -> None:
    """In the main process, before the pool forks: start from an empty directory and serve."""
    directory = multiproc_dir()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    if port:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, registry=registry)


def process_died(pid: int) -> None:
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
