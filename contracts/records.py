"""The task record in Redis: key names, field names and the states a task moves through."""

from __future__ import annotations

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


PREFIX = "kt:"
TASKS_INDEX = f"{PREFIX}tasks"
DELAYED = f"{PREFIX}delayed"
DEADLETTER = f"{PREFIX}deadletter"
WORKERS = f"{PREFIX}workers"
PRIORITY_SEPARATOR = "\x06\x16"


def record_key(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


def worker_key(hostname: str) -> str:
    return f"{PREFIX}worker:{hostname}"


def index_keys(name: str, state: str) -> tuple[str, str]:
    """The two listing indexes that depend on a task's state (the others never change)."""
    return f"{TASKS_INDEX}:state:{state}", f"{TASKS_INDEX}:name:{name}:state:{state}"


def name_index(name: str) -> str:
    return f"{TASKS_INDEX}:name:{name}"


def listing_index(name: str | None, state: str | None) -> str:
    if name and state:
        return index_keys(name, state)[1]
    if state:
        return index_keys("", state)[0]
    if name:
        return name_index(name)
    return TASKS_INDEX


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
    DELIVERY = "delivery"  # id of the message copy that holds the lease
    LEASE_UNTIL = "lease_until"
    WORKER = "worker"  # hostname of the worker that started the current attempt
    PID = "pid"  # and its pool process
    PROGRESS = "progress"
    RESULT = "result"
    ERROR_TYPE = "error_type"
    ERROR_MESSAGE = "error_message"
    TRACEBACK = "traceback"
    IDEMPOTENCY_KEY = "idempotency_key"
