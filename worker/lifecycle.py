"""One execution of a task, from the start guard to its recorded end.

`RecordedTask.__call__` runs in the pool child around the implementation; `RecordedRequest`
runs in the worker's main process for the endings a child cannot report itself (it was
killed, or it hit the hard time limit).

What an error does depends on whose it is: an outage of the records' Redis puts the message
back (the task waits for Redis); an error of a record script ends the task as FAILURE with that
error (waiting would not fix it); anything the task's own code raises is the task's failure,
retried only when it is a `TransientError` and the catalogue gives a retry policy.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from dataclasses import dataclass
from typing import Any, ClassVar, assert_never

import orjson
from billiard.exceptions import Terminated, WorkerLostError
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from kubetasks import TaskCancelled, TaskDefinition, TransientError
from pydantic import BaseModel, ValidationError

from contracts.catalogue import TaskSpec
from contracts.messages import (
    HANDOFFS_HEADER,
    PUBLISHED_AT_HEADER,
    VERSION_HEADER,
    build_message,
    client_priority,
)
from contracts.records import State, now_ms
from worker import cancellation, metrics
from worker.broker import SettledOnSuccess
from worker.records import (
    DeadLetter,
    Defer,
    RecordScriptError,
    RecordsUnavailable,
    Run,
    Skip,
    worker_records,
)

log = logging.getLogger(__name__)

# How often a message this worker's version of the task rejects is passed on to wait for a
# worker of the version it was validated against, and the wait between two passes (doubling
# from the first): about 6 minutes in all, longer than a rolling update's overlap. A worker
# often takes the same message back many times in a row, so the first waits are short.
MAX_HANDOFFS = 32
FIRST_HANDOFF_DELAY_SECONDS = 0.1
HANDOFF_DELAY_CAP_SECONDS = 15.0


class UnservedVersion(Exception):
    """The arguments were validated against a version of the task this worker does not run,
    this worker's version rejects them, and no worker of that version took the task."""


@dataclass
class Execution:
    """The context a task gets (`kubetasks.Context`)."""

    task_id: str
    tag: str  # kombu's delivery tag of the message being run: the lease holder, and the ack
    attempt: int
    retries: int

    def progress(self, current: float, total: float, message: str = "") -> None:
        body = orjson.dumps({"current": current, "total": total, "message": message})
        with cancellation.records_call():
            state = worker_records().progress(self.task_id, self.tag, body)
        if state != State.STARTED:
            raise TaskCancelled(state)


def backoff_seconds(spec: TaskSpec, retries: int) -> float:
    """Exponential backoff with full jitter (spreads a burst of retries over the window)."""
    assert spec.retry is not None
    ceiling = min(spec.retry.backoff_max_seconds, spec.retry.backoff_seconds * 2**retries)
    return random.uniform(0, ceiling)


class RecordedRequest(SettledOnSuccess):
    """Main-process hooks: a lost child requeues the task, a hard time limit fails it (a
    success is acknowledged as worker.broker.SettledOnSuccess says)."""

    def _labels(self) -> tuple[str, str]:
        return self.task.name, self.delivery_info.get("routing_key") or ""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft:
            return
        worker_records().finish(
            self.id,
            str(self.message.delivery_tag),
            State.FAILURE,
            error_type="TimeLimitExceeded",
            error_message=f"hard time limit of {timeout} s exceeded; the process was killed",
        )
        metrics.COMPLETED.labels(*self._labels(), "failed").inc()
        if self.worker_pid:
            metrics.process_died(self.worker_pid)

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, WorkerLostError | Terminated | SystemExit | KeyboardInterrupt):
            # Celery put the message back on its queue: a lost pool process (acks_late +
            # reject_on_worker_lost), or a task cut off by the end of a soft shutdown.
            state = worker_records().requeued(self.id, str(self.message.delivery_tag))
            log.warning("task %s lost its worker process; back to %s", self.id, state)
            if self.worker_pid:
                metrics.process_died(self.worker_pid)


class RecordedTask(Task):  # type: ignore[misc]
    """Base of every catalogue task: guards the start, records progress and the outcome."""

    spec: ClassVar[TaskSpec]
    definition: ClassVar[TaskDefinition]
    Request = "worker.lifecycle:RecordedRequest"
    Strategy = "worker.adoption:strategy"  # a Celery producer's own messages are taken in
    typing = False

    def __call__(self, args: dict[str, Any]) -> Any:
        tag = str((self.request.properties or {}).get("delivery_tag") or "")
        try:
            return self._guarded(args, tag)
        except RecordsUnavailable as exc:
            # Acknowledging would lose the task: put the message back; start.lua reconciles the
            # redelivery (same delivery tag).
            log.warning("task %s requeued, Redis failed: %s", self.request.id, exc)
            raise Reject(exc, requeue=True) from exc
        except RecordScriptError as exc:
            log.error("task %s failed in a record script: %s", self.request.id, exc)
            try:
                worker_records().abandon(self.request.id, tag, type(exc).__name__, str(exc))
            except (RecordsUnavailable, RecordScriptError):
                log.exception("task %s: its record could not be ended either", self.request.id)
            raise  # a failure: Celery acknowledges the message, which is not redelivered

    def _guarded(self, args: dict[str, Any], tag: str) -> Any:
        req = self.request
        queue = (req.delivery_info or {}).get("routing_key") or self.spec.queue
        labels = (self.name, queue)
        if self._handed_off(args, queue):
            raise Ignore()
        decision = worker_records().start(
            req.id, tag, req.hostname or "", self.spec.time_limit_seconds
        )
        match decision:
            case Run():
                if decision.input is not None:  # a workflow step: earlier steps' results
                    field, value = decision.input
                    args = {**args, field: value}
                execution = Execution(req.id, tag, decision.attempt, req.retries or 0)
                return self._measured(execution, args, queue, decision.priority)
            case Defer():
                queue_list, message = build_message(
                    self.name,
                    req.id,
                    args,
                    queue=queue,
                    priority=decision.priority,
                    retries=req.retries or 0,
                    published_at_ms=decision.until_ms,
                    version=req.get(VERSION_HEADER),
                    handoffs=int(req.get(HANDOFFS_HEADER) or 0),
                )
                worker_records().defer(
                    req.id, due_ms=decision.until_ms, queue_list=queue_list, message=message
                )
                log.warning("task %s is running elsewhere; a second copy waits for it", req.id)
            case DeadLetter():
                log.error("task %s dead-lettered after %s deliveries", req.id, decision.deliveries)
                metrics.COMPLETED.labels(*labels, "dead_lettered").inc()
            case Skip():
                log.info("task %s not run: %s", req.id, decision.reason)
            case _:
                assert_never(decision)
        raise Ignore()

    def _handed_off(self, args: dict[str, Any], queue: str) -> bool:
        """The rolling-update rule: a message validated against another version of this task
        whose arguments this worker's version rejects is parked for a worker that runs that
        version, while one is live (docs/tasks.md, "Rolling updates"). Passed on at most
        MAX_HANDOFFS times, with backoff; then, or with no such worker, it runs here and fails
        with the validation error (UnservedVersion)."""
        req = self.request
        sent = req.get(VERSION_HEADER)
        if sent == self.spec.version or self._rejection(args) is None:
            return False
        handoffs = int(req.get(HANDOFFS_HEADER) or 0)
        if handoffs >= MAX_HANDOFFS:
            return False
        others = worker_records().live_versions(self.name) - {self.spec.version}
        # A message without a version (rebuilt from its record) waits for any other live one.
        if not ({sent} if sent else others) & others:
            return False
        due = now_ms() + int(
            min(FIRST_HANDOFF_DELAY_SECONDS * 2**handoffs, HANDOFF_DELAY_CAP_SECONDS) * 1000
        )
        priority = client_priority(int((req.properties or {}).get("priority") or 0))
        queue_list, message = build_message(
            self.name,
            req.id,
            args,
            queue=queue,
            priority=priority,
            retries=req.retries or 0,
            published_at_ms=due,
            version=sent,
            handoffs=handoffs + 1,
        )
        worker_records().defer(req.id, due_ms=due, queue_list=queue_list, message=message)
        log.warning(
            "task %s was validated against version %s of %s, which this worker (%s) cannot run; "
            "passed on for a worker of that version (%d)",
            req.id, sent, self.name, self.spec.version, handoffs + 1,
        )  # fmt: skip
        return True

    def _rejection(self, args: dict[str, Any]) -> ValidationError | None:
        try:
            self.definition.parse(args)
        except ValidationError as exc:
            return exc
        return None

    def _checked(self, args: dict[str, Any]) -> BaseModel:
        try:
            return self.definition.parse(args)
        except ValidationError as exc:
            sent = self.request.get(VERSION_HEADER)
            if not sent or sent == self.spec.version:
                raise
            raise UnservedVersion(
                f"the arguments were validated against version {sent} of {self.name}; this "
                f"worker runs version {self.spec.version}, which rejects them, and no worker "
                f"running {sent} took the task: {exc}"
            ) from exc

    def _measured(
        self, execution: Execution, args: dict[str, Any], queue: str, priority: int
    ) -> Any:
        labels = (self.name, queue)
        published = self.request.get(PUBLISHED_AT_HEADER)
        if published:
            wait = max(0.0, (now_ms() - int(published)) / 1000)
            metrics.QUEUE_WAIT.labels(*labels).observe(wait)
        metrics.STARTED.labels(*labels).inc()
        outcome = "failed"
        started = time.perf_counter()
        try:
            with metrics.IN_PROGRESS.labels(*labels).track_inprogress():
                result = self._execute(execution, args, queue, priority)
            outcome = "succeeded"
            return result
        except Retry:
            outcome = "retried"
            raise
        except Ignore:
            outcome = "revoked"
            raise
        finally:
            metrics.RUNTIME.labels(*labels).observe(time.perf_counter() - started)
            metrics.COMPLETED.labels(*labels, outcome).inc()

    def _execute(
        self, execution: Execution, args: dict[str, Any], queue: str, priority: int
    ) -> Any:
        task_id = execution.task_id
        try:
            checked = self._checked(args)
            with cancellation.cancellable(task_id):
                value = self.definition.run(checked, execution)
            result = orjson.dumps(value)
        except TaskCancelled as stopped:
            if str(stopped) == State.REVOKED:
                log.info("task %s cancelled while running", task_id)
            else:  # put back as a dead worker's (restore_dead.lua): another copy runs it
                log.warning("task %s was taken over while this worker was unresponsive", task_id)
            raise Ignore() from None
        except (RecordsUnavailable, RecordScriptError):
            raise  # from ctx.progress: the records' trouble, not the task's
        except TransientError as exc:
            policy = self.spec.retry
            if policy and execution.retries < policy.max_retries:
                self._schedule_retry(execution, args, queue, priority, exc)
                raise Retry(str(exc), exc=exc) from None
            self._fail(execution, exc)
            raise
        except Exception as exc:
            self._fail(execution, exc)
            raise
        finished = worker_records().finish(task_id, execution.tag, State.SUCCESS, result=result)
        if finished != State.SUCCESS:
            log.info("task %s was cancelled while running; its result is discarded", task_id)
            raise Ignore()
        return value

    def _fail(self, execution: Execution, exc: BaseException) -> None:
        worker_records().finish(
            execution.task_id,
            execution.tag,
            State.FAILURE,
            error_type=type(exc).__name__,
            error_message=str(exc)[:2000],
            traceback="".join(traceback.format_exception(exc))[-8000:],
        )

    def _schedule_retry(
        self,
        execution: Execution,
        args: dict[str, Any],
        queue: str,
        priority: int,
        exc: TransientError,
    ) -> None:
        due = now_ms() + int(backoff_seconds(self.spec, execution.retries) * 1000)
        queue_list, message = build_message(
            self.name,
            execution.task_id,
            args,
            queue=queue,
            priority=priority,
            retries=execution.retries + 1,
            published_at_ms=due,
            version=self.spec.version,  # this worker validated them
        )
        worker_records().retry(
            execution.task_id,
            execution.tag,
            due_ms=due,
            queue_list=queue_list,
            message=message,
            error_type=type(exc).__name__,
            error_message=str(exc)[:2000],
        )
