"""The task record in Redis: key names, field names and the states a task moves through.

This module is the one definition of them: the Lua scripts get the same names through the
prelude that `contracts.scripts` generates from it (`F.state`, `K.delayed`, `record_key(id)`).
"""

from __future__ import annotations

import re
import time
from enum import StrEnum

from contracts.catalogue import PRIORITY_STEPS


class State(StrEnum):
    """Celery's state names, so clients written for Celery read them unchanged."""

    PENDING = "PENDING"  # queued, or waiting for its countdown
    STARTED = "STARTED"
    RETRY = "RETRY"  # failed transiently, waiting for its backoff
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


TERMINAL_STATES = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED})


def now_ms() -> int:
    """Milliseconds since the epoch: the unit of every time in records and indexes."""
    return time.time_ns() // 1_000_000


class KeyTemplate:
    """A key (or value) made of fixed text and parameters, e.g. "kt:task:{id}"; the Lua
    prelude gets a function of the same name and parameters made from the same template."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.params = tuple(re.findall(r"{(\w+)}", template))

    def __call__(self, *values: str) -> str:
        return self.template.format_map(dict(zip(self.params, values, strict=True)))


# Keys with fixed names.
TASKS_INDEX = "kt:tasks"  # every task id, score = submit time (ms); also the tombstones
DELAYED = "kt:delayed"  # countdowns and retry backoffs, score = due time (ms)
DELAYED_MESSAGES = "kt:delayed:msg"  # task id -> "<queue list>\n<message>"
DEADLETTER = "kt:deadletter"
WORKERS = "kt:workers"  # hostname, score = last heartbeat (s)
# Delivery tag -> inflight_entry(queue, worker, task id) for every unacknowledged message,
# written beside kombu's record of it (worker/broker.py), so that in-flight work is counted
# without reading the messages themselves (a thumbnail's can be 700 KB), and a dead worker's
# messages are found (contracts/lua/restore_dead.lua).
INFLIGHT = "kt:inflight"
# The task catalogue the workers publish (contracts/lua/register.lua): registration field
# (contracts.catalogue.registration_field) -> spec JSON; -> start time (ms) of the newest worker
# publishing it; -> when a worker last published it (ms).
CATALOGUE = "kt:catalogue"
CATALOGUE_STARTED = "kt:catalogue:started"
CATALOGUE_SEEN = "kt:catalogue:seen"
# Schedules (contracts.schedules): name -> definition JSON; name -> the scheduler's progress
# (newest tick looked at, newest run and its task id, JSON); the lease of the one scheduler
# replica that fires them (contracts/lua/lease.lua).
SCHEDULES = "kt:schedules"
SCHEDULE_RUNS = "kt:schedules:runs"
SCHEDULER_LEASE = "kt:scheduler:lease"
# Pub/sub channel of record changes (contracts/lua/_lib.lua `changed`, api/events.py).
EVENTS_CHANNEL = "kt:events"
# Set, with a TTL that outlives a missed refresh, while an API process listens on it: the scripts
# publish only then (cheaper for them to read than PUBSUB NUMSUB).
EVENTS_LISTENING = "kt:events:listening"
# Every workflow id, score = submit time (ms); entries older than the tombstone TTL are dropped at
# the next submit. Like kt:tasks, it tells an expired workflow (410) from an unknown one (404).
WORKFLOWS_INDEX = "kt:workflows"
# kombu's Redis transport keeps unacknowledged messages here (its defaults; the worker refuses
# transport options that would move them, see worker.broker).
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"

# Keys (and one value) with parameters.
record_key = KeyTemplate("kt:task:{id}")
idempotency_key = KeyTemplate("kt:idem:{key}")
worker_key = KeyTemplate("kt:worker:{hostname}")
state_index = KeyTemplate("kt:tasks:state:{state}")
name_index = KeyTemplate("kt:tasks:name:{name}")
name_state_index = KeyTemplate("kt:tasks:name:{name}:state:{state}")
# The runs of a schedule (contracts.schedules), newest first like the other listings.
schedule_index = KeyTemplate("kt:tasks:schedule:{schedule}")
# A workflow (WorkflowField), and the messages of its steps that wait for earlier ones, by step.
workflow_key = KeyTemplate("kt:workflow:{id}")
workflow_messages_key = KeyTemplate("kt:workflow:{id}:messages")
# A field of a workflow's hash that belongs to one step (`step` is its index, from 0).
step_field = KeyTemplate("{step}:{part}")
# How many of a workflow's steps ended in `state`.
ended_field = KeyTemplate("ended:{state}")
# Queue names and worker hostnames have no spaces; task ids may.
inflight_entry = KeyTemplate("{queue} {worker} {id}")
# Celery's own result, written for tasks a Celery producer queued itself (Field.CELERY_RESULT).
celery_result_key = KeyTemplate("celery-task-meta-{id}")

FIXED_KEYS = {
    "tasks": TASKS_INDEX,
    "delayed": DELAYED,
    "delayed_messages": DELAYED_MESSAGES,
    "deadletter": DEADLETTER,
    "workers": WORKERS,
    "inflight": INFLIGHT,
    "catalogue": CATALOGUE,
    "catalogue_started": CATALOGUE_STARTED,
    "catalogue_seen": CATALOGUE_SEEN,
    "workflows": WORKFLOWS_INDEX,
    "events": EVENTS_CHANNEL,
    "events_listening": EVENTS_LISTENING,
    "unacked": UNACKED,
    "unacked_index": UNACKED_INDEX,
}
KEY_TEMPLATES = {
    "record_key": record_key,
    "idempotency_key": idempotency_key,
    "worker_key": worker_key,
    "state_index": state_index,
    "name_index": name_index,
    "name_state_index": name_state_index,
    "schedule_index": schedule_index,
    "workflow_key": workflow_key,
    "workflow_messages_key": workflow_messages_key,
    "step_field": step_field,
    "ended_field": ended_field,
    "inflight_entry": inflight_entry,
    "celery_result_key": celery_result_key,
}


def listing_index(name: str | None, state: str | None) -> str:
    if name and state:
        return name_state_index(name, state)
    if state:
        return state_index(state)
    if name:
        return name_index(name)
    return TASKS_INDEX


PRIORITY_SEPARATOR = "\x06\x16"


def queue_lists(queue: str) -> list[str]:
    """Every Redis list Celery's transport splits a queue into, most urgent first."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


class Field:
    """Field names of the record hash."""

    NAME = "name"
    QUEUE = "queue"
    PRIORITY = "priority"
    ARGS = "args"
    STATE = "state"
    SUBMITTED_AT = "submitted_at"  # ms since the epoch; also the score in every index
    DUE_AT = "due_at"
    QUEUED_AT = "queued_at"  # set when the orphan reaper queued the task again
    STARTED_AT = "started_at"
    FINISHED_AT = "finished_at"
    ATTEMPTS = "attempts"  # executions started, redeliveries and retries included
    RETRIES = "retries"
    DELIVERIES = "deliveries"  # deliveries of the current message; capped
    TAG = "tag"  # kombu delivery tag of the message whose execution holds the lease
    LEASE_UNTIL = "lease_until"
    WORKER = "worker"  # hostname of the worker that started the current attempt
    PID = "pid"  # and its pool process
    PROGRESS = "progress"
    RESULT = "result"
    ERROR_TYPE = "error_type"
    ERROR_MESSAGE = "error_message"
    TRACEBACK = "traceback"
    IDEMPOTENCY_KEY = "idempotency_key"
    SCHEDULE = "schedule"  # the schedule that submitted the task, if one did
    WORKFLOW = "workflow"  # the workflow the task is a step of, if it is one
    STEP = "step"  # and its index there
    # A step that takes earlier steps' results: JSON {"field": argument, "from": where}, `where`
    # a step index or a list of them, nested (contracts/lua/start.lua renders it at each start).
    INPUT = "input"
    # Set while the step waits for earlier steps: its message is in the workflow's, not queued
    # (so the orphan reaper leaves it alone).
    WAITING = "waiting"
    # Token of the last call that changed the record and cannot simply run twice: a call the
    # client re-sends after a timeout finds its own token and answers as it did the first time.
    CALL = "call"
    # Set (to the result's TTL, s) for a task a Celery producer queued itself: its end is also
    # written as Celery's own result, for the producer's AsyncResult (contracts/lua/adopt.lua).
    CELERY_RESULT = "celery_result"
    # Goes up by one with every change a watcher can see (contracts/lua/_lib.lua `changed`).
    VERSION = "version"


class WorkflowField:
    """Field names of a workflow's hash (workflow_key); a step's own fields are
    step_field(index, StepPart.X)."""

    STATE = "state"  # PENDING until its last step ends, then SUCCESS, FAILURE or REVOKED
    SUBMITTED_AT = "submitted_at"
    FINISHED_AT = "finished_at"
    STEPS = "steps"  # how many
    OPEN = "open"  # steps not ended yet
    CANCELLED = "cancelled"  # set by a workflow cancel: it ends REVOKED
    # What the workflow's result is made of: a step index or a nested list of them (like INPUT).
    RESULT = "result"


class StepPart:
    ID = "id"  # the step's task id
    NAME = "name"
    NEXT = "next"  # JSON list of the steps that wait for this one
    WAIT = "wait"  # how many earlier steps it still waits for
    STATE = "state"  # set when it ends
    RESULT = "result"  # its result (JSON), set when it succeeds


def _names(kind: type) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in vars(kind).items()
        if name.isupper() and isinstance(value, str)
    }


FIELDS = _names(Field)
WORKFLOW_FIELDS = _names(WorkflowField)
STEP_PARTS = _names(StepPart)
