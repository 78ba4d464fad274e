"""Cancel stops a running task even when it never reports progress.

The API's cancel marks the record REVOKED; a task that calls `ctx.progress` learns it there. For
one that does not, the worker's main process looks, about every second, at the records of the
tasks its pool runs, and for each one now REVOKED tells the pool process that runs it: it writes
the task id to that process's cancel file and sends it SIGUSR2. The process's handler raises
TaskCancelled inside the task, as Celery's soft time limit raises inside a task, only if that
task is still the one it runs; the process itself lives on and takes the next task.

Celery's `revoke(terminate=True)` is not used: it signals whichever task the process runs when
the signal lands, and marks the process, so that the next task it runs is acknowledged as revoked
and lost. Here the process decides, by its own task id, and nothing is marked.

The exception can land anywhere in the task's code, as a soft time limit can, except inside the
worker's own calls to the task record (a half-read Redis reply would break the process's
connection): there it waits until the call returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from celery.worker import state as worker_state
from kubetasks import TaskCancelled

from contracts.records import State
from contracts.settings import get_settings
from worker.records import worker_records

log = logging.getLogger(__name__)
CANCEL_SIGNAL = signal.SIGUSR2


def _cancel_file(pid: int) -> Path:
    return get_settings().worker_heartbeat_file.parent / "cancel" / str(pid)


class _Running:
    """What this process runs now (pool processes; the main process in a solo pool)."""

    task_id: str | None = None
    in_records_call = False
    pending = False


RUNNING = _Running()


def install() -> None:
    """In every process that runs tasks: answer the cancel signal."""
    signal.signal(CANCEL_SIGNAL, _on_cancel_signal)


def _on_cancel_signal(signum: int, frame: FrameType | None) -> None:
    try:
        target = _cancel_file(os.getpid()).read_text()
    except OSError:
        return
    if RUNNING.task_id is None or target != RUNNING.task_id:
        return  # that task ended meanwhile: this one runs on
    if RUNNING.in_records_call:
        RUNNING.pending = True
        return
    raise TaskCancelled(State.REVOKED)


@contextlib.contextmanager
def cancellable(task_id: str) -> Iterator[None]:
    """The task's own code runs inside: a cancel may raise TaskCancelled in it."""
    RUNNING.task_id, RUNNING.pending = task_id, False
    try:
        yield
    finally:
        RUNNING.task_id = None


@contextlib.contextmanager
def records_call() -> Iterator[None]:
    """A call to the task record from inside the task: a cancel waits until it returns."""
    RUNNING.in_records_call = True
    try:
        yield
    finally:
        RUNNING.in_records_call = False
    if RUNNING.pending and RUNNING.task_id is not None:
        RUNNING.pending = False
        raise TaskCancelled(State.REVOKED)


class CancelWatch:
    """In the worker's main process: deliver cancels to the pool processes running them."""

    def __init__(self) -> None:
        self.delivered: set[tuple[int, str]] = set()

    def check(self) -> None:
        running = _running_requests()
        self.delivered &= set(running)
        if not running:
            return
        states = worker_records().states([task_id for _, task_id in running])
        for (pid, task_id), state in zip(running, states, strict=True):
            if state == State.REVOKED and (pid, task_id) not in self.delivered:
                self._deliver(pid, task_id)

    def _deliver(self, pid: int, task_id: str) -> None:
        path = _cancel_file(pid)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".new")
        staged.write_text(task_id)
        staged.replace(path)  # the handler reads a whole id or the previous one
        try:
            os.kill(pid, CANCEL_SIGNAL)
        except ProcessLookupError:
            return
        self.delivered.add((pid, task_id))
        log.info("task %s was cancelled: stopping it in process %d", task_id, pid)


def _running_requests() -> list[tuple[int, str]]:
    """(pid, task id) of the tasks this worker runs now."""
    requests: list[Any] = []
    with contextlib.suppress(RuntimeError):  # the loop changed the set: the next round sees it
        requests = list(worker_state.active_requests)
    return [(r.worker_pid or os.getpid(), r.id) for r in requests if r.time_start]
