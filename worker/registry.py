"""How a task implementation is written: a function of its argument model and a context.

    @implements("sleep")
    def sleep(args: SleepArgs, ctx: TaskContext) -> object: ...

The name must be in `contracts.catalogue.TASKS`; the worker refuses to start when a catalogue
entry has no implementation or an implementation has no catalogue entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from contracts.catalogue import TASKS, TaskArgs


class TransientError(Exception):
    """Raise it for a failure worth retrying; the catalogue's retry policy decides how often."""


class TaskCancelled(Exception):
    """Raised inside a task by `ctx.progress` once the task was cancelled."""


class TaskContext(Protocol):
    task_id: str
    attempt: int
    retries: int

    def progress(self, current: float, total: float, message: str = "") -> None:
        """Record progress; raises TaskCancelled when the task was cancelled meanwhile."""


A = TypeVar("A", bound=TaskArgs)
Implementation = Callable[[Any, TaskContext], object]
IMPLEMENTATIONS: dict[str, Implementation] = {}


def implements(name: str) -> Callable[[Callable[[A, TaskContext], object]], Implementation]:
    if name not in TASKS:
        raise LookupError(f"task {name!r} is not in contracts.catalogue.TASKS")

    def register(fn: Callable[[A, TaskContext], object]) -> Implementation:
        if name in IMPLEMENTATIONS:
            raise LookupError(f"task {name!r} has two implementations")
        IMPLEMENTATIONS[name] = fn
        return fn

    return register
