"""The schedules as the API keeps them: definitions in one Redis hash, the scheduler's progress
in another (contracts.schedules). Each write is one command on one key."""

from __future__ import annotations

from redis.asyncio import Redis

from contracts import records
from contracts.schedules import Progress, Schedule


class ScheduleStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def create(self, schedule: Schedule) -> bool:
        """False when the name is taken."""
        created = await self.redis.hsetnx(records.SCHEDULES, schedule.name, schedule.to_json())
        return bool(created)

    async def replace(self, schedule: Schedule) -> None:
        await self.redis.hset(records.SCHEDULES, schedule.name, schedule.to_json())

    async def get(self, name: str) -> tuple[Schedule, Progress] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(records.SCHEDULES, name)
            pipe.hget(records.SCHEDULE_RUNS, name)
            raw, progress = await pipe.execute()
        return (Schedule.from_json(raw), Progress.from_json(progress)) if raw else None

    async def all(self) -> list[tuple[Schedule, Progress]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(records.SCHEDULES)
            pipe.hgetall(records.SCHEDULE_RUNS)
            definitions, progress = await pipe.execute()
        return [
            (Schedule.from_json(raw), Progress.from_json(progress.get(name)))
            for name, raw in sorted(definitions.items())
        ]

    async def delete(self, name: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(records.SCHEDULES, name)
            pipe.hdel(records.SCHEDULE_RUNS, name)
            # Its runs stay tasks, but a schedule of the same name later must not list them.
            pipe.delete(records.schedule_index(name))
            removed, *_ = await pipe.execute()
        return bool(removed)
