"""The worker's side of the task record: start, progress, finish, retry, requeue, move due.

Each call is one Lua script from `contracts/lua`, the same state machine the API uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from contracts import records
from contracts.messages import message_for_record
from contracts.records import Field, State, now_ms
from contracts.scripts import lua
from contracts.settings import Settings

LEASE_GRACE_MS = 1000
TRIM_BUDGET = 50_000  # index entries looked at per trim call
ORPHAN_SLACK_MS = 60_000  # see contracts/lua/reap.lua


@dataclass(frozen=True)
class Decision:
    outcome: str  # "run", "skip", "defer" or "deadletter"
    detail: str  # run: the attempt number; skip: why; defer: lease end (ms); deadletter: count
    priority: int = 0


class WorkerRecords:
    """Created lazily in each process: redis-py reconnects after fork, scripts load on demand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url,
            socket_timeout=5,
            socket_connect_timeout=5,
            # A worker rides out a Redis restart instead of failing the task it is running.
            retry=Retry(ExponentialBackoff(cap=2, base=0.1), 8),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=30,
        )

    def _script(self, name: str) -> redis.commands.core.Script:
        return self.client.register_script(lua(name))

    @cached_property
    def _scripts(self) -> dict[str, redis.commands.core.Script]:
        names = (
            "start",
            "progress",
            "finish",
            "retry",
            "requeued",
            "defer",
            "move_due",
            "trim",
            "reap",
        )
        return {name: self._script(name) for name in names}

    def start(self, task_id: str, delivery: str, worker: str, time_limit: float) -> Decision:
        now = now_ms()
        # The hard time limit ends the execution by then; the lease must end before the
        # visibility timeout hands the message of a dead worker to another.
        lease_until = now + int(time_limit * 1000) + LEASE_GRACE_MS
        outcome, detail, *priority = self._scripts["start"](
            keys=[records.record_key(task_id)],
            args=[
                task_id,
                delivery,
                now,
                lease_until,
                self.settings.max_redeliveries,
                worker,
                self.settings.tombstone_ttl_seconds,
                os.getpid(),
            ],
        )
        return Decision(_str(outcome), _str(detail), int(priority[0]) if priority else 0)

    def progress(self, task_id: str, delivery: str, progress_json: bytes) -> str:
        state = self._scripts["progress"](
            keys=[records.record_key(task_id)], args=[delivery, progress_json]
        )
        return _str(state)

    def finish(
        self,
        task_id: str,
        delivery: str,
        state: State,
        *,
        result: bytes = b"",
        error_type: str = "",
        error_message: str = "",
        traceback: str = "",
    ) -> str:
        return _str(
            self._scripts["finish"](
                keys=[records.record_key(task_id)],
                args=[
                    task_id,
                    delivery,
                    state.value,
                    now_ms(),
                    self.settings.record_ttl_seconds,
                    result,
                    error_type,
                    error_message,
                    traceback,
                ],
            )
        )

    def retry(
        self,
        task_id: str,
        delivery: str,
        *,
        due_ms: int,
        queue_list: str,
        payload: bytes,
        error_type: str,
        error_message: str,
    ) -> str:
        return _str(
            self._scripts["retry"](
                keys=[records.record_key(task_id)],
                args=[task_id, delivery, due_ms, queue_list, payload, error_type, error_message],
            )
        )

    def defer(self, task_id: str, *, due_ms: int, queue_list: str, payload: bytes) -> str:
        return _str(
            self._scripts["defer"](
                keys=[records.record_key(task_id)], args=[task_id, queue_list, payload, due_ms]
            )
        )

    def requeued(self, task_id: str, delivery: str) -> str:
        return _str(
            self._scripts["requeued"](
                keys=[records.record_key(task_id)], args=[task_id, delivery, now_ms()]
            )
        )

    def reap_orphans(self, limit: int = 200) -> int:
        """Queue again the waiting tasks whose message was lost (see contracts/lua/reap.lua)."""
        now = now_ms()
        orphan_after_ms = self.settings.orphan_after_seconds * 1000
        candidates: list[bytes] = []
        for state in (State.PENDING, State.RETRY):
            index = records.index_keys("", state)[0]
            ids = self.client.zrange(
                index, now - orphan_after_ms, "-inf", byscore=True, desc=True, offset=0, num=limit
            )
            candidates.extend(i for i in ids if isinstance(i, bytes))
        requeued = 0
        for raw_id in candidates:
            task_id = raw_id.decode()
            names = [Field.NAME, Field.QUEUE, Field.PRIORITY, Field.ARGS, Field.RETRIES]
            raw = self.client.hmget(records.record_key(task_id), names)
            record = {
                n: v.decode() for n, v in zip(names, raw, strict=True) if isinstance(v, bytes)
            }
            if len(record) != len(names) or record[Field.NAME] not in self.settings.tasks:
                continue  # gone meanwhile
            queue_list, payload = message_for_record(self.settings.tasks, task_id, record, now)
            outcome = self._scripts["reap"](
                keys=[records.record_key(task_id), queue_list],
                args=[task_id, now, orphan_after_ms, payload, ORPHAN_SLACK_MS],
            )
            requeued += outcome == b"requeued"
        return requeued

    def move_due(self, limit: int = 500) -> int:
        return int(self._scripts["move_due"](args=[now_ms(), limit]))

    def trim(self, index_keys: list[str]) -> int:
        cutoff = now_ms() - self.settings.tombstone_ttl_seconds * 1000
        return int(self._scripts["trim"](keys=index_keys, args=[cutoff, TRIM_BUDGET]))


def _str(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
