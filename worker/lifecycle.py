"""One execution of a task, from the start guard to its recorded end.

`RecordedTask.__call__` runs in the pool child around the implementation; `RecordedRequest`
runs in the worker's main process for the endings a child cannot report itself (it was
killed, or it hit the hard time limit).
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import orjson
import redis
from billiard.exceptions import Terminated, WorkerLostError
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request

from contracts.catalogue import TaskSpec
from contracts.messages import DELIVERY_HEADER, PUBLISHED_AT_HEADER, build_message
from contracts.records import State, now_ms
from contracts.settings import get_settings
from worker import metrics
from worker.records import WorkerRecords
from worker.registry import IMPLEMENTATIONS, TaskCancelled, TransientError

log = logging.getLogger(__name__)


@cache
def worker_records() -> WorkerRecords:
    return WorkerRecords(get_settings())


@dataclass
class Execution:
    """The context an implementation gets (`worker.registry.TaskContext`)."""

    task_id: str
    delivery: str
    attempt: int
    retries: int
    delivery_tag: str  # kombu's, for the acknowledgement in finish.lua

    def progress(self, current: float, total: float, message: str = "") -> None:
        body = orjson.dumps({"current": current, "total": total, "message": message})
        state = worker_records().progress(self.task_id, self.delivery, body)
        if state != State.STARTED:
            raise TaskCancelled(state)


def backoff_seconds(spec: TaskSpec, retries: int) -> float:
    """Exponential backoff with full jitter (spreads a burst of retries over the window)."""
    assert spec.retry is not None
    ceiling = min(spec.retry.backoff_max_seconds, spec.retry.backoff_seconds * 2**retries)
    return random.uniform(0, ceiling)


class RecordedRequest(Request):  # type: ignore[misc]
    """Main-process hooks: a lost child requeues the task, a hard time limit fails it, and a
    success is acknowledged without a round trip (its finish already acknowledged it)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Celery subclasses the task's Request class once per task type
        # (celery.worker.request.create_request_cls) with an on_success that overrides any
        # defined here: wrap that one.
        super().__init_subclass__(**kwargs)
        on_success = cls.on_success

        def settle_then_ack(self: RecordedRequest, failed__retval__runtime: Any, **kw: Any) -> Any:
            if not failed__retval__runtime[0] and self.task.acks_late and not self.acknowledged:
                # The task returned, so finish.lua acknowledged its message (RecordedTask._execute).
                self.message.channel.qos.settled(self.message.delivery_tag)
            return on_success(self, failed__retval__runtime, **kw)

        cls.on_success = settle_then_ack

    def _labels(self) -> tuple[str, str]:
        return self.task.name, self.delivery_info.get("routing_key") or ""

    @property
    def _delivery(self) -> str:
        return str(self.request_dict.get(DELIVERY_HEADER, ""))

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft:
            return
        worker_records().finish(
            self.id,
            self._delivery,
            State.FAILURE,
            error_type="TimeLimitExceeded",
            error_message=f"hard time limit of {timeout} s exceeded; the process was killed",
            delivery_tag=self.message.delivery_tag,
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
            state = worker_records().requeued(self.id, self._delivery)
            log.warning("task %s lost its worker process; back to %s", self.id, state)
            if self.worker_pid:
                metrics.process_died(self.worker_pid)


class RecordedTask(Task):  # type: ignore[misc]
    """Base of every catalogue task: guards the start, records progress and the outcome."""

    spec: ClassVar[TaskSpec]
    Request = "worker.lifecycle:RecordedRequest"
    typing = False

    def __call__(self, args: dict[str, Any]) -> Any:
        try:
            return self._deliver(args)
        except redis.RedisError as exc:
            # The record could not be read or written. Acknowledging would lose the task: put
            # the message back; start.lua reconciles the redelivery (same delivery id).
            log.warning("task %s requeued, Redis failed: %s", self.request.id, exc)
            raise Reject(exc, requeue=True) from exc

    def _deliver(self, args: dict[str, Any]) -> Any:
        req = self.request
        queue = (req.delivery_info or {}).get("routing_key") or self.spec.queue
        labels = (self.name, queue)
        delivery = str(req.get(DELIVERY_HEADER) or "")
        decision = worker_records().start(
            req.id, delivery, req.hostname or "", self.spec.time_limit_seconds
        )
        if decision.outcome == "deadletter":
            log.error("task %s dead-lettered after %s deliveries", req.id, decision.detail)
            metrics.COMPLETED.labels(*labels, "dead_lettered").inc()
            raise Ignore()
        if decision.outcome == "defer":
            queue_list, payload = build_message(
                self.spec,
                req.id,
                args,
                queue=queue,
                priority=decision.priority,
                retries=req.retries or 0,
                published_at_ms=int(decision.detail),
            )
            worker_records().defer(
                req.id, due_ms=int(decision.detail), queue_list=queue_list, payload=payload
            )
            log.warning("task %s is running elsewhere; a second copy waits for it", req.id)
            raise Ignore()
        if decision.outcome != "run":
            log.info("task %s not run: %s", req.id, decision.detail)
            raise Ignore()

        published = req.get(PUBLISHED_AT_HEADER)
        if published:
            wait = max(0.0, (now_ms() - int(published)) / 1000)
            metrics.QUEUE_WAIT.labels(*labels).observe(wait)
        metrics.STARTED.labels(*labels).inc()
        execution = Execution(
            req.id,
            delivery,
            int(decision.detail),
            req.retries or 0,
            str((req.properties or {}).get("delivery_tag") or ""),
        )
        outcome = "failed"
        started = time.perf_counter()
        try:
            with metrics.IN_PROGRESS.labels(*labels).track_inprogress():
                result = self._execute(execution, args, queue, decision.priority)
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
        records = worker_records()
        task_id, delivery = execution.task_id, execution.delivery
        try:
            value = IMPLEMENTATIONS[self.name](self.spec.args_model.model_validate(args), execution)
            result = orjson.dumps(value)
        except TaskCancelled:
            log.info("task %s cancelled while running", task_id)
            raise Ignore() from None
        except redis.RedisError:
            raise
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
        finished = records.finish(
            task_id, delivery, State.SUCCESS, result=result, delivery_tag=execution.delivery_tag
        )
        if finished != State.SUCCESS:
            log.info("task %s was cancelled while running; its result is discarded", task_id)
            raise Ignore()
        return value

    def _fail(self, execution: Execution, exc: BaseException) -> None:
        worker_records().finish(
            execution.task_id,
            execution.delivery,
            State.FAILURE,
            error_type=type(exc).__name__,
            error_message=str(exc)[:2000],
            traceback="".join(traceback.format_exception(exc))[-8000:],
            delivery_tag=execution.delivery_tag,
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
        queue_list, payload = build_message(
            self.spec,
            execution.task_id,
            args,
            queue=queue,
            priority=priority,
            retries=execution.retries + 1,
            published_at_ms=due,
        )
        worker_records().retry(
            execution.task_id,
            execution.delivery,
            due_ms=due,
            queue_list=queue_list,
            payload=payload,
            error_type=type(exc).__name__,
            error_message=str(exc)[:2000],
        )
