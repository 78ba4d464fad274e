"""The tasks this worker serves, and their publication into Redis.

Task modules are found two ways, both imported at start: the modules named by installed
packages' `kubetasks.tasks` entry points (the built-ins are one such package), and those listed
in `KUBETASKS_TASK_MODULES`. Each `@kubetasks.task` in them becomes a `TaskSpec` with the
deployment's time limit (`KUBETASKS_TASK_TIME_LIMITS`), which the worker publishes with its
heartbeat (register.lua) for the API to validate submissions against.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import entry_points

import kubetasks
import orjson
import redis
from kubetasks import TaskDefinition

from contracts import records, scripts
from contracts.catalogue import RetryPolicy, TaskSpec, registration_field
from contracts.settings import Settings, get_settings
from worker.broker import ConfigurationError

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "kubetasks.tasks"


@dataclass(frozen=True)
class Served:
    spec: TaskSpec
    definition: TaskDefinition


def discover(modules: Iterable[str]) -> dict[str, TaskDefinition]:
    """Import every task module (entry points first, then `modules`); the tasks they define."""
    found = [
        (ep.value, f"entry point {ep.name!r} of {ep.dist.name if ep.dist else '?'}")
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]
    found += [(module, "KUBETASKS_TASK_MODULES") for module in modules]
    for module, origin in found:
        try:
            importlib.import_module(module.partition(":")[0])
        except Exception as exc:
            raise ConfigurationError(
                f"task module {module!r} ({origin}) failed to import: {type(exc).__name__}: {exc}"
            ) from exc
    return kubetasks.registered()


def spec_of(definition: TaskDefinition, time_limit: int | None = None) -> TaskSpec:
    retry = definition.retry
    return TaskSpec(
        name=definition.name,
        queue=definition.queue,
        time_limit_seconds=time_limit or definition.time_limit_seconds,
        description=definition.description,
        args_schema=definition.args_schema(),
        retry=RetryPolicy(**asdict(retry)) if retry else None,
    )


def served_by(settings: Settings) -> dict[str, Served]:
    definitions = discover(settings.task_modules)
    if not definitions:
        raise ConfigurationError(
            f"no tasks: no installed package names a module under the {ENTRY_POINT_GROUP!r} "
            "entry point group and KUBETASKS_TASK_MODULES is empty"
        )
    elsewhere = sorted(set(settings.task_time_limits) - set(definitions))
    if elsewhere:
        # One settings ConfigMap serves every worker pool: these may be another pool's tasks.
        log.warning("time limits for tasks this worker does not serve: %s", ", ".join(elsewhere))
    return {
        name: Served(spec_of(d, settings.task_time_limits.get(name)), d)
        for name, d in sorted(definitions.items())
    }


@cache
def served() -> dict[str, Served]:
    """This worker's tasks, discovered once per process."""
    return served_by(get_settings())


def specs() -> dict[str, TaskSpec]:
    """The specs of this worker's tasks, as it publishes them."""
    return {name: task.spec for name, task in served().items()}


def publish(
    client: redis.Redis,
    tasks: Iterable[TaskSpec],
    settings: Settings,
    started_ms: int,
    now: int | None = None,
) -> int:
    """Publish these task versions as a worker started at `started_ms` (register.lua); how many
    versions no worker had published within the retention were forgotten."""
    now = records.now_ms() if now is None else now
    entries = {registration_field(spec): spec.to_json().decode() for spec in tasks}
    keys, args = scripts.REGISTER.bind(
        catalogue=records.CATALOGUE,
        started=records.CATALOGUE_STARTED,
        seen=records.CATALOGUE_SEEN,
        entries=orjson.dumps(entries),
        now=now,
        started_ms=started_ms,
        horizon=now - settings.catalogue_retention_seconds * 1000,
    )
    # EVALSHA: the script's source (prelude included) is sent once, not with every heartbeat.
    return int(client.register_script(scripts.REGISTER.source)(keys=keys, args=args))


def main() -> int:
    """`python -m worker.catalogue`: publish this image's tasks once and exit, as a worker would
    at start. For deployments whose workers start at zero replicas (the API accepts a task only
    once a worker image has published it) and for submits before the first worker is up."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = get_settings()
    try:
        tasks = specs()
        publish(
            redis.Redis.from_url(settings.redis_url), tasks.values(), settings, records.now_ms()
        )
    except (ConfigurationError, redis.RedisError) as exc:
        log.error("catalogue not published: %s", exc)
        return 1
    log.info("published %d tasks: %s", len(tasks), ", ".join(tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
