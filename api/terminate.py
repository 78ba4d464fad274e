"""Stops a running task on whichever worker holds it, through Celery's broadcast revoke.

Waiting tasks need none of this (the record says REVOKED and the worker skips them); a running
task that reports progress stops on its own at the next report. This is for the rest. Celery
is imported only here, on first use, so the API's idle memory does not pay for it.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

from anyio import to_thread

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


class Terminator:
    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url

    @cached_property
    def _celery(self) -> Celery:
        from celery import Celery

        app = Celery("kubetasks-api", broker=self.broker_url, set_as_current=False)
        app.conf.update(broker_connection_timeout=2, broker_connection_max_retries=1)
        return app

    def _revoke(self, task_id: str) -> None:
        self._celery.control.revoke(task_id, terminate=True, signal="SIGTERM")

    async def terminate(self, task_id: str) -> None:
        try:
            await to_thread.run_sync(self._revoke, task_id)
        except Exception:  # the record already says REVOKED; a missed broadcast only delays the stop
            log.exception("could not broadcast the termination of task %s", task_id)
