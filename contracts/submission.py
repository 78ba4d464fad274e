"""A task's submission as contracts/lua/submit.lua takes it: POST /tasks and a schedule's runs
queue a task through the same one atomic step (its record and its message together)."""

from __future__ import annotations

import orjson

from contracts import records
from contracts.catalogue import DEFAULT_MAX_BACKLOG, QUEUES
from contracts.messages import build_message
from contracts.scripts import Named
from contracts.settings import Settings


def max_backlog(settings: Settings, queue: str) -> int:
    """Ready messages above which a queue refuses submissions (429)."""
    if queue in settings.queue_max_backlog:
        return settings.queue_max_backlog[queue]
    return QUEUES[queue].max_backlog if queue in QUEUES else DEFAULT_MAX_BACKLOG


def submit_call(
    settings: Settings,
    *,
    name: str,
    task_id: str,
    args: dict[str, object],
    queue: str,
    priority: int,
    now: int,
    due: int,
    version: str | None,
    idempotency_key: str | None,
    schedule: str | None = None,
) -> dict[str, Named]:
    """submit.lua's arguments for a new task (`due` 0 = now; `schedule` the one submitting it,
    which lists it among its runs); it answers {'created', id},
    {'existing', id}, {'conflict', id} or {'full', ready}."""
    queue_list, message = build_message(
        name,
        task_id,
        args,
        queue=queue,
        priority=priority,
        retries=0,
        published_at_ms=due or now,
        version=version,
    )
    return {
        "record": records.record_key(task_id),
        "lists": records.queue_lists(queue),
        "id": task_id,
        "name": name,
        "queue": queue,
        "priority": priority,
        "args": orjson.dumps(args),
        "now": now,
        "idem": idempotency_key or "",
        "idem_ttl": settings.idempotency_ttl_seconds,
        "list": queue_list,
        "message": message,
        "due": due,
        "max_backlog": max_backlog(settings, queue),
        "schedule": schedule or "",
    }
