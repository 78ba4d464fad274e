"""The worker's consumer (the app's `worker_consumer`): Celery's, with two differences that hold
however the worker is started (the `celery worker` command, the image, the chart, Celery's API).

- No mingle and no gossip: revokes live in the task records, not in workers' memories, so
  neither is needed, and both cost start-up time and broker traffic on every worker.
- A message for a task the catalogue lacks ends as a FAILURE record saying so
  (worker.adoption), instead of Celery's log of the whole message and a silent drop.
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

from worker.adoption import refuse_unknown


class Consumer(CeleryConsumer):  # type: ignore[misc]
    def __init__(self, *args: Any, worker_options: dict[str, Any] | None = None, **kwargs: Any):
        options = {**(worker_options or {}), "without_mingle": True, "without_gossip": True}
        super().__init__(*args, worker_options=options, **kwargs)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        refuse_unknown(message)
