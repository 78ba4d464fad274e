"""What a running task sees: its context, and the exceptions that mean something to the worker."""

from __future__ import annotations

from typing import Protocol


class TransientError(Exception):
    """Raise it for a failure worth retrying; the task's `retry` policy decides how often."""


class TaskCancelled(Exception):
    """Raised inside a task by `ctx.progress` once the task was cancelled (or taken over)."""


class Context(Protocol):
    task_id: str
    attempt: int  # deliveries of this task so far, counting this one
    retries: int  # retries after a TransientError so far

    def progress(self, current: float, total: float, message: str = "") -> None:
        """Record progress; raises TaskCancelled when the task was cancelled meanwhile."""
