"""The seed's demo task: sleep, reporting progress every second."""

from __future__ import annotations

import math
import time

import kubetasks
from pydantic import BaseModel, ConfigDict, Field


class SleepArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(ge=0, le=600, description="How long to sleep, reporting progress.")
    note: str = Field(default="", max_length=1000, description="Returned as the result.")


@kubetasks.task(queue="default", time_limit=660)
def sleep(args: SleepArgs, ctx: kubetasks.Context) -> object:
    """Sleeps, reporting progress every second (the seed's demo task)."""
    steps = math.ceil(args.seconds)
    deadline = time.monotonic() + args.seconds
    for step in range(steps):
        ctx.progress(step, steps, f"slept {step} of {steps} s")
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
    if steps:
        ctx.progress(steps, steps, "done")
    return args.note or True
