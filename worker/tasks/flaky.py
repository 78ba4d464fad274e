"""Fails its first attempts with a transient error, to show retries with backoff."""

from __future__ import annotations

from contracts.catalogue import FlakyArgs
from worker.registry import TaskContext, TransientError, implements


@implements("flaky")
def flaky(args: FlakyArgs, ctx: TaskContext) -> object:
    if ctx.retries < args.failures:
        raise TransientError(f"failing on purpose: retry {ctx.retries} of {args.failures}")
    return {"succeeded_after_retries": ctx.retries}
