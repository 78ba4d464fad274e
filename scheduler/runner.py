"""The scheduler's loop: hold the lease, submit each schedule's due ticks, note how far it got.

Every replica runs this loop; only the one holding the lease (contracts/lua/lease.lua) submits.
A tick is submitted through submit.lua like POST /tasks, its idempotency key naming the schedule
and the tick: a replica that dies after submitting and before noting its progress, or a paused
holder that wakes up after its lease moved on, submits the same key again and gets the same task.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid

import redis

from contracts import records, scripts
from contracts.records import now_ms
from contracts.schedules import Progress, Schedule, plan, tick_key
from contracts.settings import Settings
from contracts.submission import submit_call
from scheduler import metrics

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.holder = uuid.uuid4().hex
        self.stopping = threading.Event()
        self._lease = client.register_script(scripts.LEASE.source)
        self._submit = client.register_script(scripts.SUBMIT.source)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except redis.RedisError as exc:  # the next pass tries again
                log.warning("scheduler pass failed: %s", exc)
                _not_leading()
            self.stopping.wait(self.settings.schedules_poll_seconds)
        with contextlib.suppress(redis.RedisError):  # else it expires by itself
            self._call_lease(0)  # a successor need not wait for the lease to expire
        _not_leading()

    def step(self) -> None:
        if not self._call_lease(int(self.settings.schedules_lease_seconds * 1000)):
            _not_leading()
            return
        metrics.LEADER.set(1)
        # Set afresh each pass, so that a deleted or paused schedule leaves no series behind.
        _drop_schedule_gauges()
        definitions = self.client.hgetall(records.SCHEDULES)
        progress = self.client.hgetall(records.SCHEDULE_RUNS)
        for raw in definitions.values():
            schedule = Schedule.from_json(raw)
            done = Progress.from_json(progress.get(schedule.name.encode()))
            self._fire(schedule, done)

    def _fire(self, schedule: Schedule, done: Progress) -> None:
        name = schedule.name
        now = now_ms()
        due = None if schedule.paused else plan(schedule, done.through_ms, now)
        if due is not None:
            last_run, task_id, refused = done.last_run_ms, done.last_task_id, 0
            for tick in due.fire:
                submitted = self._submit_tick(schedule, tick)
                if submitted is None:
                    refused += 1
                else:
                    last_run, task_id = tick, submitted
                    metrics.RUNS.labels(name).inc()
            if due.missed or refused:
                metrics.MISFIRES.labels(name).inc(due.missed + refused)
                log.warning("schedule %s: %d tick(s) missed", name, due.missed + refused)
            done = Progress(through_ms=due.through, last_run_ms=last_run, last_task_id=task_id)
            self.client.hset(records.SCHEDULE_RUNS, name, done.to_json())
        if done.last_run_ms is not None:
            metrics.LAST_RUN.labels(name).set(done.last_run_ms / 1000)
        if schedule.paused:
            return
        upcoming = schedule.ticks_after(max(done.through_ms, now))
        following = [next(upcoming, None), next(upcoming, None)]
        if following[0] is not None:
            metrics.NEXT_RUN.labels(name).set(following[0] / 1000)
            if following[1] is not None:
                metrics.INTERVAL.labels(name).set((following[1] - following[0]) / 1000)

    def _submit_tick(self, schedule: Schedule, tick: int) -> str | None:
        """The task id of the tick's run (a new one, or the one an earlier try submitted); None
        when the queue was full."""
        named = submit_call(
            self.settings,
            name=schedule.task,
            task_id=uuid.uuid4().hex,
            args=schedule.args,
            queue=schedule.queue,
            priority=schedule.priority,
            now=now_ms(),
            due=0,
            version=None,  # checked when the schedule was written; the worker checks again
            idempotency_key=tick_key(schedule.name, tick),
            schedule=schedule.name,
        )
        keys, argv = scripts.SUBMIT.bind(**named)
        outcome, value = self._submit(keys=keys, args=argv)
        if outcome == b"full":
            log.warning(
                "schedule %s: queue %s is full; tick %d dropped",
                schedule.name,
                schedule.queue,
                tick,
            )
            return None
        # 'conflict': the schedule's arguments changed since an earlier try of this tick.
        return str(value.decode())

    def _call_lease(self, ttl_ms: int) -> bool:
        keys, argv = scripts.LEASE.bind(
            lease=records.SCHEDULER_LEASE, holder=self.holder, ttl=ttl_ms
        )
        return bool(self._lease(keys=keys, args=argv))


def _not_leading() -> None:
    """Only the holder speaks for the schedules: a former holder's figures would go stale (and
    one cut off from Redis cannot know whether it still holds the lease)."""
    metrics.LEADER.set(0)
    _drop_schedule_gauges()


def _drop_schedule_gauges() -> None:
    for gauge in (metrics.LAST_RUN, metrics.NEXT_RUN, metrics.INTERVAL):
        gauge.clear()
