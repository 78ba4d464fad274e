"""Threads of the worker's main process: heartbeat and readiness, and the delayed-task mover.

The heartbeat file tells Kubernetes the process is alive (it keeps beating while a task runs,
even in a single-process pool, and stops when the process is frozen); the ready file says the
worker reaches Redis. Losing Redis makes the worker unready, never unalive, so a Redis outage
does not become a restart storm.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import redis
from celery import bootsteps

from contracts import records
from contracts.catalogue import TASKS
from contracts.records import State
from contracts.settings import Settings, get_settings
from worker.records import RecordsUnavailable, worker_records

log = logging.getLogger(__name__)
TRIM_EVERY_SECONDS = 60.0
REAP_EVERY_SECONDS = 60.0


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


class Heartbeat:
    def __init__(self, settings: Settings, hostname: str, queues: list[str], concurrency: int):
        self.settings = settings
        self.hostname = hostname
        self.description = orjson.dumps(
            {"hostname": hostname, "queues": queues, "concurrency": concurrency, "pid": os.getpid()}
        )
        # Its own client without retries: a beat must never wait long on a dead Redis.
        self.client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )

    def beat(self) -> None:
        _touch(self.settings.worker_heartbeat_file)
        client = self.client
        try:
            max_age = self.settings.worker_heartbeat_max_age_seconds
            now = time.time()
            with client.pipeline(transaction=False) as pipe:
                pipe.zadd(records.WORKERS, {self.hostname: now})
                pipe.set(
                    records.worker_key(self.hostname), self.description, px=int(max_age * 1000)
                )
                # Workers that died without leaving (killed pods) drop out of the registry.
                pipe.zremrangebyscore(records.WORKERS, "-inf", now - 10 * max_age)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("Redis unreachable, worker not ready: %s", exc)
            self.settings.worker_ready_file.unlink(missing_ok=True)
            return
        _touch(self.settings.worker_ready_file)

    def leave(self) -> None:
        self.settings.worker_ready_file.unlink(missing_ok=True)
        try:
            self.client.zrem(records.WORKERS, self.hostname)
            self.client.delete(records.worker_key(self.hostname))
        except redis.RedisError:
            pass  # the registry entry expires by itself


def _listing_indexes() -> list[str]:
    keys = [records.TASKS_INDEX]
    for state in State:
        keys.append(records.state_index(state))
    for name in TASKS:
        keys.append(records.name_index(name))
        keys.extend(records.name_state_index(name, state) for state in State)
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
        self.heartbeat = Heartbeat(settings, worker.hostname, queues, worker.concurrency)
        self._spawn("heartbeat", settings.worker_heartbeat_interval_seconds, self.heartbeat.beat)
        self._spawn("delayed-mover", settings.scheduler_interval_seconds, self._move)
        self._spawn("index-trim", TRIM_EVERY_SECONDS, self._trim)
        reap_every = min(REAP_EVERY_SECONDS, settings.orphan_after_seconds / 3)
        self._spawn("orphan-reaper", reap_every, self._reap)

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
    def _move() -> None:
        if moved := worker_records().move_due():
            log.info("queued %d delayed tasks", moved)

    @staticmethod
    def _reap() -> None:
        if requeued := worker_records().reap_orphans():
            log.warning("queued %d tasks again whose message was lost", requeued)

    @staticmethod
    def _trim() -> None:
        worker_records().trim(_listing_indexes())
