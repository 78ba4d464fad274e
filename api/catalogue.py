"""The task catalogue as the API sees it: the versions the workers publish (register.lua),
read from Redis and kept in memory, and a compiled JSON Schema validator per version.

The API imports no task code: a team's tasks become submittable when a worker that has them
starts. A copy older than `REFRESH_SECONDS` is served while the next one is read beside the
request; a submit naming a task the copy lacks waits for a read (at most every
`MISS_REFRESH_SECONDS`), so a task is submittable about as soon as its first worker beats.
When Redis is unreachable the last copy serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import jsonschema_rs
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts import records
from contracts.catalogue import QUEUES, Registration, TaskSpec, current
from contracts.settings import Settings

REFRESH_SECONDS = 2.0
MISS_REFRESH_SECONDS = 0.1

Location = tuple[str | int, ...]
FIELD_REQUIRED = "field required"


class Catalogue:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._tasks: dict[str, TaskSpec] = {}
        self._queues: list[str] = sorted(QUEUES)
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()
        self._validators: dict[str, Any] = {}
        self._refresh: asyncio.Task[None] | None = None

    async def tasks(self) -> dict[str, TaskSpec]:
        if time.monotonic() - self._read_at > REFRESH_SECONDS:
            if self._read_at == float("-inf"):
                await self._read(REFRESH_SECONDS)  # nothing to serve yet
            elif self._refresh is None or self._refresh.done():
                # Serve this copy and read the next one beside it: a request that waited for
                # the read (and every request queued behind it on the lock) showed in the p99.
                self._refresh = asyncio.create_task(self._read(REFRESH_SECONDS))
        return self._tasks

    async def find(self, name: str) -> TaskSpec | None:
        tasks = await self.tasks()
        if name not in tasks:
            await self._read(MISS_REFRESH_SECONDS)
        return self._tasks.get(name)

    async def queues(self) -> list[str]:
        """The built-in queues and every queue a task is published for."""
        await self.tasks()
        return self._queues

    def problems(self, spec: TaskSpec, args: Mapping[str, Any]) -> list[tuple[Location, str]]:
        """Where and why `args` break the task's schema; empty when they are valid."""
        validator = self._validators.get(spec.version)
        if validator is None:
            validator = self._validators[spec.version] = jsonschema_rs.validator_for(
                dict(spec.args_schema)
            )
        found: list[tuple[Location, str]] = []
        for error in validator.iter_errors(args):
            where: Location = tuple(error.instance_path)
            detail = error.kind.as_dict()
            if error.kind.name == "required":
                found.append(((*where, detail["property"]), FIELD_REQUIRED))
            elif error.kind.name == "additionalProperties":
                found.extend(((*where, extra), "unknown field") for extra in detail["unexpected"])
            else:
                found.append((where, error.message))
        return found

    async def _read(self, unless_younger_than: float) -> None:
        try:
            await self._read_now(unless_younger_than)
        except RedisError:
            if self._read_at == float("-inf"):
                raise  # nothing to serve: the request answers 503
            self._read_at = time.monotonic()  # serve the last copy; try again in a while

    async def _read_now(self, unless_younger_than: float) -> None:
        async with self._lock:  # one read for every request that found the copy stale
            if time.monotonic() - self._read_at <= unless_younger_than:
                return
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(records.CATALOGUE)
                pipe.hgetall(records.CATALOGUE_STARTED)
                pipe.hgetall(records.CATALOGUE_SEEN)
                specs, started, seen = await pipe.execute()
            registrations = [
                Registration(TaskSpec.from_json(raw), int(started[f]), int(seen[f]))
                for f, raw in specs.items()
                if f in started and f in seen
            ]
            max_age_ms = int(self.settings.worker_heartbeat_max_age_seconds * 1000)
            self._tasks = current(registrations, records.now_ms() - max_age_ms)
            # Derived once per read: a submit asks for them every time.
            self._queues = sorted({*QUEUES, *(spec.queue for spec in self._tasks.values())})
            self._read_at = time.monotonic()
