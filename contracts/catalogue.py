"""The task catalogue as API and workers share it: what a registered task looks like, and which
of its registered versions counts.

Tasks are defined in the teams' own packages (`@kubetasks.task`, packages/kubetasks) and the
built-ins (packages/kubetasks-builtins). Each worker imports the task modules it finds and
publishes a `TaskSpec` per task into Redis (contracts/lua/register.lua, at start and with every
heartbeat); the API reads them from there, so it never imports task code. A spec's `version`
hashes all of it: two workers running different code for one name publish two versions, and
`current` picks the one submissions are validated against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import orjson


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
    queue: str
    time_limit_seconds: int
    description: str
    args_schema: Mapping[str, Any] = field(hash=False)
    retry: RetryPolicy | None = None

    @property
    def soft_time_limit_seconds(self) -> float:
        # The soft limit leaves the task a moment to clean up before the hard kill.
        return max(self.time_limit_seconds - 5, self.time_limit_seconds * 0.9)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @cached_property
    def version(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()[:16]

    @classmethod
    def from_json(cls, raw: bytes | str) -> TaskSpec:
        data = orjson.loads(raw)
        retry = data.pop("retry")
        return cls(**data, retry=RetryPolicy(**retry) if retry else None)


@dataclass(frozen=True)
class Registration:
    """One published version of a task: the spec, when the newest worker publishing it
    started, and when a worker last published it (ms since the epoch)."""

    spec: TaskSpec
    started_ms: int
    seen_ms: int


def registration_field(spec: TaskSpec) -> str:
    """The field of a version in the catalogue hashes (contracts.records.CATALOGUE*)."""
    return f"{spec.name}@{spec.version}"


def current(registrations: Iterable[Registration], live_after_ms: int) -> dict[str, TaskSpec]:
    """The version of each task that submissions are validated against: the one the most
    recently started worker publishes, among versions a live worker publishes (seen after
    `live_after_ms`); with no live worker for a task (scaled to zero), among all its versions.
    A rolling update thus switches to the new version with its first new worker, a rollback
    switches back the same way, and a task stays known while its workers are down."""
    best: dict[str, tuple[tuple[bool, int, int, str], TaskSpec]] = {}
    for r in registrations:
        rank = (r.seen_ms > live_after_ms, r.started_ms, r.seen_ms, r.spec.version)
        known = best.get(r.spec.name)
        if known is None or rank > known[0]:
            best[r.spec.name] = (rank, r.spec)
    return {name: spec for name, (_, spec) in sorted(best.items())}


QUEUES: dict[str, QueueSpec] = {
    q.name: q
    for q in (
        QueueSpec("default", max_backlog=100_000, description="Short and I/O-bound work."),
        QueueSpec("cpu", max_backlog=10_000, description="CPU-bound work."),
    )
}

# The backlog limit of a queue that is not one of QUEUES (KUBETASKS_QUEUE_MAX_BACKLOG sets others).
DEFAULT_MAX_BACKLOG = 10_000

# The seed's `{"type": N}` submissions: a sleep of N * 10 seconds (0 runs at once), the
# built-in task SEED_TASK.
SEED_TASK = "sleep"
SEED_TASK_TYPES: dict[int, float] = {0: 0.0, 1: 10.0, 2: 20.0, 3: 30.0}

# Priorities as clients see them: 0..9, higher served first. Celery's Redis transport serves
# its lower numbers first and splits a queue into one list per step.
PRIORITY_MIN, PRIORITY_MAX = 0, 9
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)


def longest_time_limit(tasks: Mapping[str, TaskSpec]) -> int:
    return max((t.time_limit_seconds for t in tasks.values()), default=0)
