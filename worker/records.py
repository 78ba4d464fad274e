"""The worker's side of the task record: start, progress, finish, retry, requeue, move due.

Each call is one Lua script from `contracts/lua`, the same state machine the API uses. Errors
come out in two kinds that the lifecycle treats differently: `RecordsUnavailable` (Redis did not
answer, even after the client's retries: the task waits for it) and `RecordScriptError` (a
script failed on this record: a bug or a damaged record, which waiting will not fix).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script as RegisteredScript
from redis.retry import Retry

from contracts import records, scripts
from contracts.messages import message_for_record
from contracts.records import Field, State, now_ms
from contracts.scripts import Named, Script
from contracts.settings import Settings, get_settings
from worker.catalogue import served

LEASE_GRACE_MS = 1000
TRIM_BUDGET = 50_000  # index entries looked at per trim call
ORPHAN_SLACK_MS = 60_000  # see contracts/lua/reap.lua
# What contracts.messages.message_for_record needs from a record.
_MESSAGE_FIELDS = [Field.NAME, Field.QUEUE, Field.PRIORITY, Field.ARGS, Field.RETRIES]


class RecordsUnavailable(Exception):
    """Redis did not answer a record call, retries included."""


class RecordScriptError(Exception):
    """A record script raised an error (not an outage): retrying would raise it again."""


@dataclass(frozen=True)
class Run:
    attempt: int
    priority: int
    # A workflow step's argument that takes earlier steps' results: (name, value).
    input: tuple[str, Any] | None = None


@dataclass(frozen=True)
class Skip:
    reason: str  # the state that makes the delivery pointless, or "missing"


@dataclass(frozen=True)
class Defer:
    """Another execution holds the lease until `until_ms`: this copy waits for it."""

    until_ms: int
    priority: int


@dataclass(frozen=True)
class DeadLetter:
    deliveries: int


Decision = Run | Skip | Defer | DeadLetter


class WorkerRecords:
    """The worker's Redis client, opened on first use in each process and again after a fork.

    A pool process runs one task at a time and waits on its calls: it keeps a single
    connection (`single_connection`, set by worker.app at `worker_process_init`), which skips
    the pool's checkout on every call (the drain in docs/benchmarks.md). The main process keeps a
    connection pool: its housekeeping threads and Celery's hooks must not queue behind one
    another's calls while Redis hangs.
    """

    def __init__(self, settings: Settings, *, socket_timeout: float = 5.0) -> None:
        self.settings = settings
        self.socket_timeout = socket_timeout
        self.single_connection = False
        self._lock = threading.Lock()
        self._pid = 0
        self._client: redis.Redis | None = None
        self._registered: dict[str, RegisteredScript] = {}

    @property
    def client(self) -> redis.Redis:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # A forked child must never use its parent's socket.
                self._client = redis.Redis.from_url(
                    self.settings.redis_url,
                    single_connection_client=self.single_connection,
                    socket_timeout=self.socket_timeout,
                    socket_connect_timeout=self.socket_timeout,
                    # A worker rides out a Redis restart instead of failing the running task.
                    # Calls are re-sent after a timeout: each script is safe to run twice
                    # (start.lua by its token, the others by the state they check).
                    retry=Retry(ExponentialBackoff(cap=2, base=0.1), 8),
                    retry_on_error=[redis.ConnectionError, redis.TimeoutError],
                    health_check_interval=30,
                )
                self._pid = os.getpid()
                self._registered = {}
            return self._client

    def _call(self, script: Script, **named: Named) -> Any:
        keys, args = script.bind(**named)
        client = self.client  # first: a new client (new process) starts with no scripts
        registered = self._registered.get(script.name)
        if registered is None:
            registered = self._registered[script.name] = client.register_script(script.source)
        try:
            return registered(keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RecordsUnavailable(f"{script.name}.lua: {exc}") from exc
        except redis.ResponseError as exc:
            raise RecordScriptError(f"{script.name}.lua: {exc}") from exc

    def start(self, task_id: str, tag: str, worker: str, time_limit: float) -> Decision:
        now = now_ms()
        # The hard time limit ends the execution by then; the lease must end before the
        # visibility timeout hands the message of a dead worker to another.
        lease_until = now + int(time_limit * 1000) + LEASE_GRACE_MS
        outcome, detail, *rest = self._call(
            scripts.START,
            record=records.record_key(task_id),
            id=task_id,
            tag=tag,
            now=now,
            lease_until=lease_until,
            max_deliveries=self.settings.max_redeliveries,
            worker=worker,
            dead_ttl=self.settings.tombstone_ttl_seconds,
            pid=os.getpid(),
            token=uuid.uuid4().hex,
        )
        match _str(outcome):
            case "run":
                given = (_str(rest[1]), orjson.loads(rest[2])) if len(rest) == 3 else None
                return Run(int(detail), int(rest[0]), given)
            case "defer":
                return Defer(int(detail), int(rest[0]))
            case "deadletter":
                return DeadLetter(int(detail))
            case _:
                return Skip(_str(detail))

    def progress(self, task_id: str, tag: str, progress_json: bytes) -> str:
        return _str(
            self._call(
                scripts.PROGRESS,
                record=records.record_key(task_id),
                id=task_id,
                tag=tag,
                progress=progress_json,
            )
        )

    def finish(
        self,
        task_id: str,
        tag: str,
        state: State,
        *,
        result: bytes = b"",
        error_type: str = "",
        error_message: str = "",
        traceback: str = "",
    ) -> str:
        """End the execution and acknowledge its message (by `tag`) in one call."""
        return _str(
            self._call(
                scripts.FINISH,
                record=records.record_key(task_id),
                id=task_id,
                tag=tag,
                state=state.value,
                now=now_ms(),
                ttl=self.settings.record_ttl_seconds,
                result=result,
                error_type=error_type,
                error_message=error_message,
                traceback=traceback,
            )
        )

    def abandon(self, task_id: str, tag: str, error_type: str, error_message: str) -> str:
        """End the task as FAILURE, whoever holds it (abandon.lua)."""
        return _str(
            self._call(
                scripts.ABANDON,
                record=records.record_key(task_id),
                id=task_id,
                tag=tag,
                now=now_ms(),
                ttl=self.settings.record_ttl_seconds,
                error_type=error_type,
                error_message=error_message[:2000],
            )
        )

    def adopt(
        self,
        task_id: str,
        *,
        name: str,
        queue: str,
        priority: int,
        args: str,
        now: int,
        due: int,
        queue_list: str,
        message: bytes,
        tag: str,
        known: bool,
        error_type: str,
        error_message: str,
    ) -> str:
        """Take in a task a Celery producer queued itself (adopt.lua; worker.adoption)."""
        return _str(
            self._call(
                scripts.ADOPT,
                record=records.record_key(task_id),
                id=task_id,
                name=name,
                queue=queue,
                priority=priority,
                args=args,
                now=now,
                due=due,
                list=queue_list,
                message=message,
                tag=tag,
                error_type=error_type,
                error_message=error_message,
                known=int(known),
                ttl=self.settings.record_ttl_seconds,
            )
        )

    def retry(
        self,
        task_id: str,
        tag: str,
        *,
        due_ms: int,
        queue_list: str,
        message: bytes,
        error_type: str,
        error_message: str,
    ) -> str:
        return _str(
            self._call(
                scripts.RETRY,
                record=records.record_key(task_id),
                id=task_id,
                tag=tag,
                due=due_ms,
                list=queue_list,
                message=message,
                error_type=error_type,
                error_message=error_message,
            )
        )

    def defer(self, task_id: str, *, due_ms: int, queue_list: str, message: bytes) -> str:
        return _str(
            self._call(
                scripts.DEFER,
                record=records.record_key(task_id),
                id=task_id,
                list=queue_list,
                message=message,
                due=due_ms,
            )
        )

    def live_versions(self, name: str) -> set[str]:
        """The versions of task `name` that a live worker publishes (contracts/lua/register.lua)."""
        horizon = now_ms() - int(self.settings.worker_heartbeat_max_age_seconds * 1000)
        try:
            seen: dict[bytes, bytes] = self.client.hgetall(records.CATALOGUE_SEEN)  # type: ignore[assignment]
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RecordsUnavailable(f"live_versions: {exc}") from exc
        prefix = f"{name}@".encode()
        return {
            field[len(prefix) :].decode()
            for field, at in seen.items()
            if field.startswith(prefix) and int(at) > horizon
        }

    def requeued(self, task_id: str, tag: str) -> str:
        return _str(
            self._call(
                scripts.REQUEUED,
                record=records.record_key(task_id),
                id=task_id,
                tag=tag,
                now=now_ms(),
            )
        )

    def states(self, task_ids: list[str]) -> list[str | None]:
        """The state of each task (None when its record is gone), in one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hget(records.record_key(task_id), Field.STATE)
            try:
                replies = pipe.execute()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise RecordsUnavailable(f"states: {exc}") from exc
        return [r.decode() if isinstance(r, bytes) else None for r in replies]

    def reap_orphans(self, limit: int = 200) -> int:
        """Queue again the waiting tasks whose message was lost (see contracts/lua/reap.lua)."""
        now = now_ms()
        orphan_after_ms = self.settings.orphan_after_seconds * 1000
        candidates: list[bytes] = []
        for state in (State.PENDING, State.RETRY):
            ids = self.client.zrange(
                records.state_index(state),
                now - orphan_after_ms,
                "-inf",
                byscore=True,
                desc=True,
                offset=0,
                num=limit,
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
            if len(record) != len(_MESSAGE_FIELDS) or record[Field.NAME] not in served():
                continue  # gone meanwhile
            queue_list, message = message_for_record(task_id, record, now)
            outcome = self._call(
                scripts.REAP,
                record=records.record_key(task_id),
                list=queue_list,
                id=task_id,
                now=now,
                orphan_after_ms=orphan_after_ms,
                message=message,
                slack_ms=ORPHAN_SLACK_MS,
            )
            requeued += outcome == b"requeued"
        return requeued

    def restore_dead(self) -> int:
        """Put back the messages of workers whose heartbeat is older than the max age
        (contracts/lua/restore_dead.lua); how many."""
        since = time.time() - self.settings.worker_heartbeat_max_age_seconds
        return int(self._call(scripts.RESTORE_DEAD, now=now_ms(), since=since))

    def move_due(self, limit: int = 500) -> int:
        return int(self._call(scripts.MOVE_DUE, now=now_ms(), limit=limit))

    def trim(self, indexes: list[str]) -> int:
        cutoff = now_ms() - self.settings.tombstone_ttl_seconds * 1000
        return int(self._call(scripts.TRIM, indexes=indexes, cutoff=cutoff, budget=TRIM_BUDGET))


@cache
def worker_records() -> WorkerRecords:
    """This process's records client (one per process; see WorkerRecords)."""
    return WorkerRecords(get_settings())


def _str(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
