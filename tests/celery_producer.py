"""A team's own Celery app that sends work to kubetasks' workers: it shares nothing with
`worker/` but the broker (and, for AsyncResult, the result backend) and the task names."""

from __future__ import annotations

from typing import Any

from celery import Celery


def producer(redis_url: str) -> Celery:
    app = Celery("team-app", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue="default",
    )

    # shared=False: each test builds its own app, and a shared task would reach them all.
    @app.task(name="sleep", shared=False)  # type: ignore[untyped-decorator]
    def sleep(**kwargs: Any) -> Any:  # runs on kubetasks' workers, never here
        raise NotImplementedError

    return app
