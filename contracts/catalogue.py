"""The task catalogue: every task's name, argument model, queue, limits and retry policy.

The API validates submissions against these models and routes by the queue named here; the
worker binds an implementation to each name (`worker/tasks/`) and refuses to start if one is
missing. Adding a task means one entry here and one implementation module in the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TaskArgs(BaseModel):
    """Base of every argument model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SleepArgs(TaskArgs):
    seconds: float = Field(ge=0, le=600, description="How long to sleep, reporting progress.")
    note: str = Field(default="", max_length=1000, description="Returned as the result.")


class PrimesArgs(TaskArgs):
    limit: int = Field(ge=2, le=20_000_000, description="Count the primes below this number.")


class FlakyArgs(TaskArgs):
    failures: int = Field(ge=0, le=10, description="Attempts that fail before one succeeds.")


class ThumbnailArgs(TaskArgs):
    image_base64: str = Field(
        min_length=4, max_length=700_000, description="The image file, base64-encoded."
    )
    max_size: int = Field(default=128, ge=16, le=1024, description="Longest side in pixels.")
    format: Literal["PNG", "JPEG", "WEBP"] = "PNG"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, for errors a task marks as transient."""

    max_retries: int
    backoff_seconds: float
    backoff_max_seconds: float


@dataclass(frozen=True)
class QueueSpec:
    name: str
    max_backlog: int
    description: str


@dataclass(frozen=True)
class TaskSpec:
    name: str
    args_model: type[TaskArgs]
    queue: str
    time_limit_seconds: int
    description: str
    retry: RetryPolicy | None = None

    @property
    def soft_time_limit_seconds(self) -> float:
        # The soft limit leaves the task a moment to clean up before the hard kill.
        return max(self.time_limit_seconds - 5, self.time_limit_seconds * 0.9)


QUEUES: dict[str, QueueSpec] = {
    q.name: q
    for q in (
        QueueSpec("default", max_backlog=100_000, description="Short and I/O-bound work."),
        QueueSpec("cpu", max_backlog=10_000, description="CPU-bound work."),
    )
}

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec(
            "sleep",
            SleepArgs,
            queue="default",
            time_limit_seconds=660,
            description="Sleeps, reporting progress every second (the seed's demo task).",
        ),
        TaskSpec(
            "primes",
            PrimesArgs,
            queue="cpu",
            time_limit_seconds=300,
            description="Counts primes with a sieve: CPU-bound, for autoscaling demos.",
        ),
        TaskSpec(
            "flaky",
            FlakyArgs,
            queue="default",
            time_limit_seconds=60,
            description="Fails its first attempts with a transient error, then succeeds.",
            retry=RetryPolicy(max_retries=5, backoff_seconds=1.0, backoff_max_seconds=30.0),
        ),
        TaskSpec(
            "thumbnail",
            ThumbnailArgs,
            queue="default",
            time_limit_seconds=120,
            description="Resizes an image to a thumbnail and returns it base64-encoded.",
        ),
    )
}

# The seed's `{"type": N}` submissions: a sleep of N * 10 seconds (0 runs at once).
SEED_TASK_TYPES: dict[int, float] = {0: 0.0, 1: 10.0, 2: 20.0, 3: 30.0}

# Priorities as clients see them: 0..9, higher served first. Celery's Redis transport serves
# its lower numbers first and splits a queue into one list per step.
PRIORITY_MIN, PRIORITY_MAX = 0, 9
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)


def configured(time_limits: Mapping[str, int]) -> dict[str, TaskSpec]:
    """The catalogue with a deployment's time-limit overrides (KUBETASKS_TASK_TIME_LIMITS)."""
    unknown = set(time_limits) - set(TASKS)
    if unknown:
        raise ValueError(f"time limits for unknown tasks: {sorted(unknown)}")
    return {
        name: replace(spec, time_limit_seconds=time_limits.get(name, spec.time_limit_seconds))
        for name, spec in TASKS.items()
    }


def longest_time_limit(tasks: Mapping[str, TaskSpec]) -> int:
    return max(t.time_limit_seconds for t in tasks.values())
