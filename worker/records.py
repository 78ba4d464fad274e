"""The worker's side of the task record: start, progress, finish, retry, requeue, move due.

Each call is one Lua script from `contracts/lua`, the same state machine the API uses.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from contracts import records
from contracts.messages import message_for_record
from contracts.records import Field, State, now_ms
from contracts.scripts import lua
from contracts.settings import Settings

LEASE_GRACE_MS = 1000
TRIM_BUDGET = 50_000  # index entries looked at per trim call
ORPHAN_SLACK_MS = 60_000  # see contracts/lua/reap.lua
# What contracts.messages.message_for_record needs from a record.
_MESSAGE_FIELDS = [Field.NAME, Field.QUEUE, Field.PRIORITY, Field.ARGS, Field.RETRIES]


@dataclass(frozen=True)
class Decision:
    outcome: str  # "run", "skip", "defer" or "deadletter"
    detail: str  # run: the attempt number; skip: why; defer: lease end (ms); deadletter: count
    priority: int = 0


class WorkerRecords:
    """The worker's Redis client, opened on first use in each process and again after a fork.

    A pool process runs one task at a time and waits on its calls: it keeps a single
    connection (`single_connection`, set by worker.app at `worker_process_init`), which skips
    the pool's checkout on every call (the drain in docs/benchmarks.md). The main process keeps a
    connection pool: its housekeeping threads and Celery's hooks must not queue behind one
    another's calls while Redis hangs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.single_connection = False
        self._lock = threading.Lock()
        self._pid = 0
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Script] = {}

    @property
    def client(self) -> redis.Redis:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # A forked child must never use its parent's socket.
                self._client = redis.Redis.from_url(
                    self.settings.redis_url,
                    single_connection_client=self.single_connection,
                    socket_timeout=5,
                    socket_connect_timeout=5,
                    # A worker rides out a Redis restart instead of failing the running task.
                    retry=Retry(ExponentialBackoff(cap=2, base=0.1), 8),
                    retry_on_error=[redis.ConnectionError, redis.TimeoutError],
                    health_check_interval=30,
                )
                self._pid = os.getpid()
                self._scripts = {}
            return self._client

    def _script(self, name: str) -> Script:
        client = self.client  # first: a new client (new process) starts with no scripts
        if name not in self._scripts:
            self._scripts[name] = client.register_script(lua(name))
        return self._scripts[name]

    def start(self, task_id: str, delivery: str, worker: str, time_limit: float) -> Decision:
        now = now_ms()
        # The hard time limit ends the execution by then; the lease must end before the
        # visibility timeout hands the message of a dead worker to another.
        lease_until = now + int(time_limit * 1000) + LEASE_GRACE_MS
        outcome, detail, *priority = self._script("start")(
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
        state = self._script("progress")(
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
        delivery_tag: str = "",
    ) -> str:
        """End the execution and acknowledge its message (by `delivery_tag`) in one call."""
        return _str(
            self._script("finish")(
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
                    delivery_tag,
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
            self._script("retry")(
                keys=[records.record_key(task_id)],
                args=[task_id, delivery, due_ms, queue_list, payload, error_type, error_message],
            )
        )

    def defer(self, task_id: str, *, due_ms: int, queue_list: str, payload: bytes) -> str:
        return _str(
            self._script("defer")(
                keys=[records.record_key(task_id)], args=[task_id, queue_list, payload, due_ms]
            )
        )

    def requeued(self, task_id: str, delivery: str) -> str:
        return _str(
            self._script("requeued")(
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
            raw = self.client.hmget(records.record_key(task_id), _MESSAGE_FIELDS)
            record = {
                n: v.decode()
                for n, v in zip(_MESSAGE_FIELDS, raw, strict=True)
                if isinstance(v, bytes)
            }
            if len(record) != len(_MESSAGE_FIELDS) or record[Field.NAME] not in self.settings.tasks:
                continue  # gone meanwhile
            queue_list, payload = message_for_record(self.settings.tasks, task_id, record, now)
            outcome = self._script("reap")(
                keys=[records.record_key(task_id), queue_list],
                args=[task_id, now, orphan_after_ms, payload, ORPHAN_SLACK_MS],
            )
            requeued += outcome == b"requeued"
        return requeued

    def move_due(self, limit: int = 500) -> int:
        return int(self._script("move_due")(args=[now_ms(), limit]))

    def trim(self, index_keys: list[str]) -> int:
        cutoff = now_ms() - self.settings.tombstone_ttl_seconds * 1000
        return int(self._script("trim")(keys=index_keys, args=[cutoff, TRIM_BUDGET]))


def _str(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
