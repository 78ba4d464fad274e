"""Tasks that a team's own Celery code queues itself (`send_task`, `delay`, `apply_async`).

Such a message reaches our queues with no record and is not one of ours (it has no publish
stamp). On receipt, in the worker's main process, it is adopted (contracts/lua/adopt.lua): its
arguments, given as keyword arguments or as one positional dict, are checked against the task's
model; the task gets a record under its own id and one of our messages (next in its list, or
delayed until its countdown: nothing waits in a worker's memory), and from there runs as any task
does; its end is also written as Celery's own result, so the producer's AsyncResult sees it. A
message for an unknown task or with invalid arguments ends FAILURE at once with why, counted in
`kubetasks_tasks_rejected_total{reason}` and logged in one line. The producer's message is
acknowledged in the same script; a second delivery of it changes nothing.

Two documented Celery hooks bring messages here: the catalogue tasks' `Strategy` (messages for
known names) and the worker's consumer class (worker.consumer: unknown names).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from celery.worker.strategy import default as default_strategy
from pydantic import ValidationError

from contracts.catalogue import PRIORITY_MAX, PRIORITY_MIN, QUEUES
from contracts.messages import PUBLISHED_AT_HEADER, build_message
from contracts.records import now_ms
from worker import metrics
from worker.broker import settle
from worker.catalogue import Served, served
from worker.records import RecordScriptError, RecordsUnavailable, worker_records

log = logging.getLogger(__name__)


class Refused(Exception):
    """Why a producer's message cannot run: (error type, reason for the metric, message)."""

    def __init__(self, error_type: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.error_type, self.reason = error_type, reason


def strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Any:
    """Celery's default strategy for our own messages; adoption for a producer's."""
    handle = default_strategy(task, app, consumer, **kwargs)

    def handle_or_adopt(
        message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any
    ) -> Any:
        if PUBLISHED_AT_HEADER in message.headers:
            return handle(message, body, ack, reject, callbacks, **kw)
        adopt(message, task.name)
        return None

    return handle_or_adopt


def refuse_unknown(message: Any) -> None:
    """A message for a task the catalogue does not have (Celery's consumer hands it here)."""
    name = str(message.headers.get("task", ""))
    if PUBLISHED_AT_HEADER not in message.headers:
        adopt(message, name)
        return
    # One of our own: its task left the catalogue while it waited (a deployment).
    task_id, tag = str(message.headers.get("id", "")), str(message.delivery_tag)
    error = _unknown(name)
    log.error("task %s[%s] not run: %s", name, task_id, error)
    metrics.REJECTED.labels(error.reason).inc()
    _settled(message, lambda: worker_records().abandon(task_id, tag, error.error_type, str(error)))


def adopt(message: Any, name: str) -> None:
    headers = message.headers
    task_id, tag = str(headers.get("id", "")), str(message.delivery_tag)
    task = served().get(name)
    queue = str(message.delivery_info.get("routing_key") or "")
    if task is not None and queue not in {*QUEUES, task.spec.queue}:
        queue = task.spec.queue
    step = message.properties.get("priority")
    priority = min(PRIORITY_MAX, max(PRIORITY_MIN, PRIORITY_MAX - int(step or 0)))
    now = now_ms()
    due = _due_ms(headers.get("eta"), now)
    sent: Any = None
    try:
        sent = message.payload
        if task is None:
            raise _unknown(name)
        args = _arguments(task, sent)
    except Refused as refused:
        args_json = _json_or_repr(sent)
        call = {"error_type": refused.error_type, "error_message": str(refused)[:2000]}
        queue_list, payload = queue, b""
        error: Refused | None = refused
    else:
        args_json = orjson.dumps(args).decode()
        queue_list, payload = build_message(
            name, task_id, args, queue=queue, priority=priority, retries=0,
            published_at_ms=due or now, version=task.spec.version,
        )  # fmt: skip
        call = {"error_type": "", "error_message": ""}
        error = None

    def record() -> str:
        return worker_records().adopt(
            task_id, name=name, queue=queue, priority=priority, args=args_json, now=now,
            due=due, queue_list=queue_list, message=payload, tag=tag,
            known=task is not None, **call,
        )  # fmt: skip

    outcome = _settled(message, record)
    if outcome == "refused" and error is not None:
        metrics.REJECTED.labels(error.reason).inc()
        log.error("task %s[%s] from a Celery producer refused: %s", name, task_id, error)
    elif outcome == "adopted":
        log.info("task %s[%s] from a Celery producer adopted into queue %s", name, task_id, queue)
    elif outcome is not None:
        log.info(
            "task %s[%s]: another delivery of a task taken in before (%s)", name, task_id, outcome
        )


def _settled(message: Any, record: Any) -> str | None:
    """Run the script that records and acknowledges `message`; then acknowledge it locally. An
    outage puts the message back for later; a script error drops it, loudly."""
    try:
        outcome: str = record()
    except RecordsUnavailable as exc:
        log.warning(
            "task %s not taken in, Redis failed (it comes back): %s", message.headers.get("id"), exc
        )
        try:
            message.reject(requeue=True)
        except Exception:
            log.warning("its message returns after the visibility timeout")
        return None
    except RecordScriptError:
        log.exception("task %s dropped: its record could not be written", message.headers.get("id"))
        message.ack()
        return None
    settle(message)
    message.ack()
    return outcome


def _unknown(name: str) -> Refused:
    known = ", ".join(served())
    return Refused("NotRegistered", "unknown_task", f"unknown task {name!r}; known: {known}")


def _arguments(task: Served, sent: Any) -> dict[str, Any]:
    """Celery's (args, kwargs, embed) body -> the task's checked arguments."""
    try:
        args, kwargs, _ = sent
    except (TypeError, ValueError):
        raise Refused(
            "InvalidArguments", "invalid_arguments", "not a Celery protocol 2 body"
        ) from None
    if (args and kwargs) or len(args) > 1 or (args and not isinstance(args[0], dict)):
        raise Refused(
            "InvalidArguments",
            "invalid_arguments",
            f"{task.spec.name} takes keyword arguments or one positional dict of them, got "
            f"{len(args)} positional and {len(kwargs)} keyword arguments",
        )
    try:
        checked: dict[str, Any] = task.definition.parse(args[0] if args else kwargs).model_dump(
            mode="json"
        )
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in ('args', *e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise Refused("InvalidArguments", "invalid_arguments", fields) from None
    return checked


def _due_ms(eta: object, now: int) -> int:
    """Celery's `eta` header (ISO 8601, from a countdown or an eta) -> due time in ms, 0 = now."""
    if not isinstance(eta, str):
        return 0
    try:
        due = int(datetime.fromisoformat(eta).timestamp() * 1000)
    except ValueError:
        return 0
    return due if due > now else 0


def _json_or_repr(sent: Any) -> str:
    try:
        return orjson.dumps(sent).decode()[:10_000]
    except TypeError:
        return repr(sent)[:10_000]
