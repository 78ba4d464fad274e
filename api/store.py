"""Task records and queues as the API sees them: one Redis round trip per call (a status read
of an unknown id takes a second)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from api.catalogue import Catalogue
from api.events import Hub
from api.exceptions import (
    BacklogFull,
    DeadLetterNotFound,
    IdempotencyKeyReused,
    TaskExpired,
    TaskNotFound,
)
from api.schedules import ScheduleStore
from api.workflows import WorkflowStore
from contracts import records, scripts
from contracts.catalogue import TaskSpec
from contracts.messages import message_for_record
from contracts.records import State, now_ms
from contracts.scripts import Named, Script
from contracts.settings import Settings
from contracts.submission import max_backlog, submit_call

# Entries a listing may pass over (expired records) before it returns a short page.
LIST_SCAN_FACTOR = 4


@dataclass(frozen=True)
class Submitted:
    task_id: str
    created: bool  # False when an earlier submit with the same idempotency key is returned


@dataclass(frozen=True)
class Page:
    items: list[tuple[str, dict[str, str]]]
    next_cursor: tuple[str, int] | None


@dataclass(frozen=True)
class QueueStats:
    name: str
    ready: int
    in_flight: int
    oldest_published_ms: int
    workers: int

    @property
    def backlog(self) -> int:
        return self.ready + self.in_flight

    def oldest_age_seconds(self, now: float) -> float:
        if not self.oldest_published_ms:
            return 0.0
        return max(0.0, now - self.oldest_published_ms / 1000)


@dataclass(frozen=True)
class Overview:
    queues: list[QueueStats]
    delayed: int
    dead_letters: int
    workers: list[dict[str, object]]


CancelOutcome = Literal["revoked", "terminal"]


def _text(fields: dict[bytes, bytes] | list[bytes]) -> dict[str, str]:
    """A record as Redis returns it (a mapping, or HGETALL's flat list inside Lua) -> str."""
    if isinstance(fields, dict):
        return {k.decode(): v.decode() for k, v in fields.items()}
    it = iter(fields)
    return {k.decode(): v.decode() for k, v in zip(it, it, strict=True)}


class TaskStore:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._registered = {
            script.name: redis.register_script(script.source)
            for script in (
                scripts.SUBMIT,
                scripts.CANCEL,
                scripts.LIST,
                scripts.QUEUE_STATS,
                scripts.DEADLETTER_REQUEUE,
                scripts.DEADLETTER_DISCARD,
            )
        }
        self.catalogue = Catalogue(redis, settings)
        self.schedules = ScheduleStore(redis)
        self.workflows = WorkflowStore(redis, settings)
        self.events = Hub(redis, settings.events_max_streams)

    async def _call(self, script: Script, **named: Named) -> Any:
        keys, args = script.bind(**named)
        return await self._registered[script.name](keys=keys, args=args)

    def max_backlog(self, queue: str) -> int:
        return max_backlog(self.settings, queue)

    async def submit(
        self,
        spec: TaskSpec,
        args: dict[str, object],
        *,
        queue: str,
        priority: int,
        countdown: float,
        idempotency_key: str | None,
    ) -> Submitted:
        task_id = uuid.uuid4().hex
        now = now_ms()
        named = submit_call(
            self.settings,
            name=spec.name,
            task_id=task_id,
            args=args,
            queue=queue,
            priority=priority,
            now=now,
            due=now + int(countdown * 1000) if countdown > 0 else 0,
            version=spec.version,
            idempotency_key=idempotency_key,
        )
        outcome, value = await self._call(scripts.SUBMIT, **named)
        if outcome == b"full":
            raise BacklogFull(queue, int(value), max_backlog(self.settings, queue))
        if outcome == b"conflict":
            raise IdempotencyKeyReused(idempotency_key or "", value.decode())
        return Submitted(task_id=value.decode(), created=outcome == b"created")

    async def get(self, task_id: str) -> dict[str, str]:
        key = records.record_key(task_id)
        fields: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[assignment]
        if fields:
            return _text(fields)
        # Only a miss looks for the tombstone that tells an expired task from an unknown one.
        if await self.redis.zscore(records.TASKS_INDEX, task_id) is None:
            raise TaskNotFound(task_id)
        # A task a Celery producer queued itself has its id before its record: the record may
        # have been written between the two reads (worker.adoption).
        fields = await self.redis.hgetall(key)  # type: ignore[assignment]
        if fields:
            return _text(fields)
        raise TaskExpired(task_id)

    async def cancel(self, task_id: str) -> tuple[CancelOutcome, State | None]:
        """Revoke a waiting or running task; returns the outcome and the state it was in."""
        outcome, before = await self._call(
            scripts.CANCEL,
            record=records.record_key(task_id),
            id=task_id,
            now=now_ms(),
            ttl=self.settings.record_ttl_seconds,
        )
        if outcome == b"missing":
            raise TaskNotFound(task_id)
        if outcome == b"expired":
            raise TaskExpired(task_id)
        return ("revoked" if outcome == b"revoked" else "terminal"), State(before.decode())

    async def list(self, index: str, *, limit: int, cursor: tuple[str, int] | None) -> Page:
        score, skip = cursor or ("+inf", 0)
        next_score, next_skip, rows = await self._call(
            scripts.LIST,
            index=index,
            max_score=score,
            skip=skip,
            limit=limit,
            scan_cap=limit * LIST_SCAN_FACTOR,
        )
        items = [(task_id.decode(), _text(fields)) for task_id, fields in rows]
        more = (next_score.decode(), int(next_skip)) if next_score else None
        return Page(items=items, next_cursor=more)

    async def overview(self) -> Overview:
        names = await self.catalogue.queues()
        lists = [key for q in names for key in records.queue_lists(q)]
        since = time.time() - self.settings.worker_heartbeat_max_age_seconds
        per_queue, inflight, delayed, dead, workers = await self._call(
            scripts.QUEUE_STATS,
            lists=lists,
            lists_per_queue=len(lists) // len(names),
            workers_since=since,
        )
        described = [orjson.loads(w) for w in workers]
        stats = []
        for name, (ready, oldest) in zip(names, per_queue, strict=True):
            stats.append(
                QueueStats(
                    name=name,
                    ready=int(ready),
                    in_flight=sum(1 for rk in inflight if rk.decode() == name),
                    oldest_published_ms=int(oldest),
                    workers=sum(1 for w in described if name in w.get("queues", [])),
                )
            )
        return Overview(stats, int(delayed), int(dead), described)

    async def requeue_dead_letter(self, task_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zscore(records.DEADLETTER, task_id)
            pipe.hgetall(records.record_key(task_id))
            dead_since, raw = await pipe.execute()
        if dead_since is None or not raw:
            raise DeadLetterNotFound(task_id)
        now = now_ms()
        queue_list, message = message_for_record(task_id, _text(raw), now)
        outcome = await self._call(
            scripts.DEADLETTER_REQUEUE,
            record=records.record_key(task_id),
            id=task_id,
            list=queue_list,
            message=message,
            now=now,
            token=uuid.uuid4().hex,
        )
        if outcome == b"missing":
            raise DeadLetterNotFound(task_id)

    async def discard_dead_letter(self, task_id: str) -> None:
        outcome = await self._call(
            scripts.DEADLETTER_DISCARD,
            record=records.record_key(task_id),
            id=task_id,
            ttl=self.settings.record_ttl_seconds,
            token=uuid.uuid4().hex,
        )
        if outcome == b"missing":
            raise DeadLetterNotFound(task_id)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
