"""The Celery app, `celery -A worker.app worker`: the reliability profile in one place.

- late acknowledgement, reject on a lost worker, prefetch 1: a message leaves Redis only when
  its task has ended, and a worker holds no more than it runs;
- the visibility timeout exceeds every task's hard time limit, or the worker refuses to start
  (otherwise Redis would hand a running task to a second worker);
- countdowns and retries wait in Redis (`kt:delayed`), never in a worker's memory, so an ETA
  longer than the visibility timeout cannot be redelivered in a loop;
- SIGTERM starts a soft shutdown (REMAP_SIGTERM=SIGQUIT) bounded by the soft-shutdown timeout;
- JSON only; results live in the task record, not in a Celery result backend;
- messages are fetched and acknowledged through worker.broker's transport (the acknowledgement
  protocol), set here for every process of the app and checked when the worker starts.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from kombu.entity import Queue

from contracts.catalogue import PRIORITY_STEPS, QUEUES, longest_time_limit
from contracts.settings import Settings, get_settings
from worker import cancellation, metrics
from worker.broker import TRANSPORT, ConfigurationError, TransportCheck, check_transport_options
from worker.catalogue import Served, served
from worker.housekeeping import ConsumerLoopPulse, Housekeeping, instance_name
from worker.lifecycle import RecordedTask
from worker.records import worker_records

SERIALIZER = "json"


def visibility_margin(longest: int) -> float:
    """Headroom between the longest hard time limit and the visibility timeout (the chart
    refuses the same values at install: kubetasks.validateTimeLimits in _helpers.tpl)."""
    return max(5.0, longest * 0.1)


def check_profile(settings: Settings, tasks: dict[str, Served]) -> None:
    """Refuse configurations that would lose or duplicate work."""
    longest = longest_time_limit({name: s.spec for name, s in tasks.items()})
    margin = visibility_margin(longest)
    if settings.visibility_timeout_seconds < longest + margin:
        raise ConfigurationError(
            f"KUBETASKS_VISIBILITY_TIMEOUT_SECONDS={settings.visibility_timeout_seconds} must "
            f"exceed the longest task time limit ({longest} s) by {margin:g} s, "
            "or Redis redelivers running tasks to a second worker"
        )
    known = set(QUEUES) | {s.spec.queue for s in tasks.values()}
    unknown_queues = set(settings.worker_queues) - known
    if unknown_queues:
        raise ConfigurationError(
            f"KUBETASKS_WORKER_QUEUES has queues none of this worker's tasks use: "
            f"{sorted(unknown_queues)} (its tasks use {sorted(known)})"
        )


def check_serializers(app: Celery) -> None:
    """Pickle (or any other serializer) would let a queue writer run code on the workers."""
    conf = app.conf
    used = {
        *conf.accept_content,
        *(conf.result_accept_content or ()),
        conf.task_serializer,
        conf.result_serializer,
        conf.event_serializer,
    }
    if used - {SERIALIZER, "application/json"}:
        raise ConfigurationError(f"only JSON serialization is allowed, got {sorted(used)}")


def create_app(settings: Settings, tasks: dict[str, Served]) -> Celery:
    check_profile(settings, tasks)
    app = Celery(
        "kubetasks", broker=settings.redis_url, amqp="worker.broker:AMQP", set_as_current=True
    )
    app.conf.update(
        broker_transport=TRANSPORT,
        worker_consumer="worker.consumer:Consumer",
        task_serializer=SERIALIZER,
        result_serializer=SERIALIZER,
        event_serializer=SERIALIZER,
        accept_content=[SERIALIZER],
        result_accept_content=[SERIALIZER],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_send_task_events=settings.worker_task_events,
        worker_soft_shutdown_timeout=settings.worker_soft_shutdown_timeout,
        # Nothing waits in a worker for an ETA (countdowns wait in Redis): an idle worker exits
        # at once instead of sitting out the soft-shutdown timeout.
        worker_enable_soft_shutdown_on_idle=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # A "success" without running would skip finish.lua, which acknowledges (worker/broker.py).
        worker_deduplicate_successful_tasks=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            "priority_steps": list(PRIORITY_STEPS),
            "queue_order_strategy": "priority",
            "unacked_restore_interval": settings.restore_interval_seconds,
            "unacked_restore_throttle": 1,
            "kt_fast_path": settings.worker_fast_path,
        },
        task_queues=[Queue(name, routing_key=name) for name in settings.worker_queues],  # type: ignore[no-untyped-call]
        task_default_queue=settings.worker_queues[0],
    )
    check_serializers(app)
    check_transport_options(app.conf.broker_transport_options)
    for served_task in tasks.values():
        spec = served_task.spec
        app.task(
            name=spec.name,
            base=RecordedTask,
            spec=spec,
            definition=served_task.definition,
            time_limit=spec.time_limit_seconds,
            soft_time_limit=spec.soft_time_limit_seconds,
        )(_unused_run)
    app.steps["worker"].add(Housekeeping)
    app.steps["consumer"].add(TransportCheck)
    app.steps["consumer"].add(ConsumerLoopPulse)
    return app


def _unused_run(args: dict[str, Any]) -> None:
    """Celery wants a run function; `RecordedTask.__call__` dispatches to the implementation."""
    raise NotImplementedError


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _main_process(sender: Any, **_: Any) -> None:
    # Every record of an unacknowledged message names the worker holding it (kt:inflight), so
    # that a dead worker's messages can be restored at once (contracts/lua/restore_dead.lua).
    sender.app.conf.broker_transport_options["kt_worker"] = instance_name(sender.hostname)
    metrics.reset_and_serve(get_settings().worker_metrics_port)
    cancellation.install()  # a single-process pool runs tasks here


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _pool_process(**_: Any) -> None:
    # One task at a time here: a single Redis connection (see WorkerRecords).
    worker_records().single_connection = True
    cancellation.install()


@signals.after_setup_logger.connect  # type: ignore[untyped-decorator]
def _log_to_file(logger: logging.Logger, format: str, **_: Any) -> None:
    logfile = get_settings().worker_logfile
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter(format))
        logger.addHandler(handler)


app = create_app(get_settings(), served())
