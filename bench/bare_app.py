"""The ceiling without kubetasks: a minimal Celery app with a no-op task.

Same broker (the run's Redis), JSON, and the reliability profile of `worker.app`: late
acknowledgement, reject on a lost worker, prefetch 1. No task records, no metrics, no events,
and no result backend unless BENCH_BARE_BACKEND names one. `celery -A bench.bare_app worker`
reads the broker from BENCH_BARE_BROKER.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

QUEUE = "bench-bare"
TASK = "bench.noop"

app = Celery("bench-bare", broker=os.environ.get("BENCH_BARE_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A Redis result backend only where a bench asks for one (bench.redis_cost): the drains
    # compare against Celery at its cheapest.
    result_backend=os.environ.get("BENCH_BARE_BACKEND"),
    task_ignore_result="BENCH_BARE_BACKEND" not in os.environ,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_transport_options={"visibility_timeout": 7200},
    broker_connection_retry_on_startup=True,
)


def _noop() -> None:
    return None


noop: Any = app.task(name=TASK)(_noop)
