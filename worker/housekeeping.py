"""Threads of the worker's main process: heartbeat and readiness, and the delayed-task mover.

The heartbeat file tells Kubernetes the worker is alive: its time is when the consumer's event
loop last ran (`LoopPulse`, a timer in that loop), so a worker whose consumer stopped or hung
fails its liveness probe even while this thread still runs. Time with Redis unreachable, or with
a task running in a single-process pool (which holds the loop), counts as running: losing Redis
makes the worker unready, never unalive, so a Redis outage does not become a restart storm. The
ready file says the worker reaches Redis.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import redis
from celery import bootsteps
from celery.concurrency.solo import TaskPool as SoloPool
from celery.worker import state as worker_state

from contracts import records
from contracts.catalogue import TaskSpec
from contracts.records import State
from contracts.settings import Settings, get_settings
from worker.cancellation import CancelWatch
from worker.catalogue import publish, served, specs
from worker.records import RecordsUnavailable, worker_records

log = logging.getLogger(__name__)
TRIM_EVERY_SECONDS = 60.0
REAP_EVERY_SECONDS = 60.0
CANCEL_CHECK_SECONDS = 1.0  # a cancelled task stops within about this (worker.cancellation)


def _touch(path: Path, at: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    if at is not None:
        os.utime(path, (at, at))


class LoopPulse:
    """When the consumer's event loop last ran (wall clock), or was excused from running."""

    def __init__(self) -> None:
        self.last = time.time()

    def touch(self) -> None:
        self.last = time.time()


PULSE = LoopPulse()


class ConsumerLoopPulse(bootsteps.StartStopStep):  # type: ignore[misc]
    """A timer in the consumer's event loop that touches the pulse (consumer blueprint)."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        self.timer_entry: Any = None

    def start(self, consumer: Any) -> None:
        PULSE.touch()
        interval = get_settings().worker_heartbeat_interval_seconds
        self.timer_entry = consumer.timer.call_repeatedly(interval, PULSE.touch)

    def stop(self, consumer: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


@cache
def instance_name(hostname: str) -> str:
    """This worker process in the registry and in kt:inflight: its hostname and a nonce, as a
    container restarted in its pod keeps the hostname (and PID 1) while its predecessor's
    messages must be found as a dead worker's."""
    return f"{hostname}#{uuid.uuid4().hex[:8]}"


class Heartbeat:
    def __init__(
        self,
        settings: Settings,
        hostname: str,
        queues: list[str],
        concurrency: int,
        tasks: list[TaskSpec],
        *,
        loop_held_by_tasks: bool,
    ):
        self.settings = settings
        # What this worker can run, published with every beat: the catalogue the API
        # validates submissions against.
        self.tasks = tasks
        self.started_ms = records.now_ms()
        self.member = instance_name(hostname)
        self.loop_held_by_tasks = loop_held_by_tasks
        self.description = orjson.dumps(
            {"hostname": hostname, "queues": queues, "concurrency": concurrency, "pid": os.getpid()}
        )
        # Its own client without retries: a beat must never wait long on a dead Redis.
        self.client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )

    def beat(self) -> None:
        reachable = self._register()
        if not reachable or (self.loop_held_by_tasks and worker_state.active_requests):
            PULSE.touch()  # the loop is excused: waiting for Redis, or running the task
        _touch(self.settings.worker_heartbeat_file, at=PULSE.last)
        if reachable:
            _touch(self.settings.worker_ready_file)

    def _register(self) -> bool:
        """Enter this worker in the registry behind /queues; False when Redis is unreachable."""
        client = self.client
        try:
            max_age = self.settings.worker_heartbeat_max_age_seconds
            now = time.time()
            with client.pipeline(transaction=False) as pipe:
                pipe.zadd(records.WORKERS, {self.member: now})
                pipe.set(records.worker_key(self.member), self.description, px=int(max_age * 1000))
                # Workers that died without leaving (killed pods) drop out of the registry.
                pipe.zremrangebyscore(records.WORKERS, "-inf", now - 10 * max_age)
                pipe.execute()
            publish(self.client, self.tasks, self.settings, self.started_ms)
        except redis.RedisError as exc:
            log.warning("Redis unreachable, worker not ready: %s", exc)
            self.settings.worker_ready_file.unlink(missing_ok=True)
            return False
        return True

    def leave(self) -> None:
        self.settings.worker_ready_file.unlink(missing_ok=True)
        try:
            self.client.zrem(records.WORKERS, self.member)
            self.client.delete(records.worker_key(self.member))
        except redis.RedisError:
            pass  # the registry entry expires by itself


def _listing_indexes(schedules: list[bytes]) -> list[str]:
    keys = [records.TASKS_INDEX]
    for state in State:
        keys.append(records.state_index(state))
    for name in served():
        keys.append(records.name_index(name))
        keys.extend(records.name_state_index(name, state) for state in State)
    keys.extend(records.schedule_index(name.decode()) for name in schedules)
    return keys


class Housekeeping(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs the heartbeat and the mover in daemon threads for the worker's lifetime."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.heartbeat: Heartbeat | None = None

    def start(self, worker: Any) -> None:
        settings = get_settings()
        queues = sorted(q.name for q in worker.app.amqp.queues.consume_from.values())
        self.heartbeat = Heartbeat(
            settings,
            worker.hostname,
            queues,
            worker.concurrency,
            list(specs().values()),
            loop_held_by_tasks=isinstance(worker.pool, SoloPool),
        )
        self._spawn("heartbeat", settings.worker_heartbeat_interval_seconds, self.heartbeat.beat)
        self._spawn("delayed-mover", settings.scheduler_interval_seconds, self._move)
        # Often enough that an expired task's tombstone goes about when the TTL says.
        trim_every = min(TRIM_EVERY_SECONDS, settings.tombstone_ttl_seconds / 2)
        self._spawn("index-trim", trim_every, self._trim)
        reap_every = min(REAP_EVERY_SECONDS, settings.orphan_after_seconds / 3)
        self._spawn("orphan-reaper", reap_every, self._reap)
        self._spawn("cancel-watch", CANCEL_CHECK_SECONDS, CancelWatch().check)
        self._spawn("dead-worker-restore", settings.restore_interval_seconds, self._restore_dead)

    def stop(self, worker: Any) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        if self.heartbeat:
            self.heartbeat.leave()

    def _spawn(self, name: str, interval: float, job: Any) -> None:
        def loop() -> None:
            while not self.stopping.is_set():
                try:
                    job()
                except (RecordsUnavailable, redis.RedisError) as exc:  # the next round retries
                    log.debug("%s waits for Redis: %s", name, exc)
                except Exception:
                    log.exception("%s failed; trying again in %s s", name, interval)
                self.stopping.wait(interval)

        thread = threading.Thread(target=loop, name=f"kubetasks-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    @staticmethod
    def _restore_dead() -> None:
        if restored := worker_records().restore_dead():
            log.warning("put back %d messages of workers that stopped beating", restored)

    @staticmethod
    def _move() -> None:
        if moved := worker_records().move_due():
            log.info("queued %d delayed tasks", moved)

    @staticmethod
    def _reap() -> None:
        if requeued := worker_records().reap_orphans():
            log.warning("queued %d tasks again whose message was lost", requeued)

    @staticmethod
    def _trim() -> None:
        schedules: list[bytes] = worker_records().client.hkeys(records.SCHEDULES)  # type: ignore[assignment]
        worker_records().trim(_listing_indexes(schedules))
