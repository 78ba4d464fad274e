"""Write tasks for kubetasks workers.

    import kubetasks

    @kubetasks.task(queue="default", time_limit=60)
    def greet(name: str, times: int = 1, *, ctx: kubetasks.Context) -> str:
        ctx.progress(1, 1, "greeted")
        return " ".join([f"hello {name}"] * times)

Register the module under the `kubetasks.tasks` entry point group of your package (or list it
in `KUBETASKS_TASK_MODULES`) and install it into an image built FROM the worker image: the
workers import it at start and publish what they can run; the API validates submissions against
it. This package depends on pydantic only.
"""

from kubetasks.context import Context, TaskCancelled, TransientError
from kubetasks.definition import Retry, TaskDefinition, registered, task

__all__ = [
    "Context",
    "Retry",
    "TaskCancelled",
    "TaskDefinition",
    "TransientError",
    "registered",
    "task",
]
