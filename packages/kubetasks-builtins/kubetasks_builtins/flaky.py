"""Fails its first attempts with a transient error, to show retries with backoff."""

from __future__ import annotations

from typing import Annotated

import kubetasks
from pydantic import Field


@kubetasks.task(
    queue="default",
    time_limit=60,
    retry=kubetasks.Retry(max_retries=5, backoff_seconds=1.0, backoff_max_seconds=30.0),
)
def flaky(
    failures: Annotated[
        int, Field(ge=0, le=10, description="Attempts that fail before one succeeds.")
    ],
    ctx: kubetasks.Context,
) -> object:
    """Fails its first attempts with a transient error, then succeeds."""
    if ctx.retries < failures:
        raise kubetasks.TransientError(f"failing on purpose: retry {ctx.retries} of {failures}")
    return {"succeeded_after_retries": ctx.retries}
