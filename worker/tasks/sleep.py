"""The seed's demo task: sleep, reporting progress every second."""

from __future__ import annotations

import math
import time

from contracts.catalogue import SleepArgs
from worker.registry import TaskContext, implements


@implements("sleep")
def sleep(args: SleepArgs, ctx: TaskContext) -> object:
    steps = math.ceil(args.seconds)
    deadline = time.monotonic() + args.seconds
    for step in range(steps):
        ctx.progress(step, steps, f"slept {step} of {steps} s")
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
    if steps:
        ctx.progress(steps, steps, "done")
    return args.note or True
