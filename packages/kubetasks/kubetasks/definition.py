"""The `@task` decorator: a function becomes a task definition the workers can register.

A task's arguments are a JSON object, described by a pydantic model: either the function's one
parameter annotated with a `BaseModel` subclass, or a model made from its typed parameters (their
defaults and `Annotated[..., Field(...)]` constraints included). Unknown fields are an error
either way, unless the given model says otherwise. A parameter named `ctx` gets the `Context`.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, create_model

from kubetasks.context import Context

# Queue names become Redis keys and Prometheus label values: DNS-label-like, no dots.
QUEUE_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?")
TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
CONTEXT_PARAMETER = "ctx"


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with full jitter, for the `TransientError`s a task raises."""

    max_retries: int
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_seconds < 0:
            raise ValueError("Retry: max_retries and backoff_seconds must not be negative")
        if self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError("Retry: backoff_max_seconds must be at least backoff_seconds")


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    fn: Callable[..., object]
    args_model: type[BaseModel]
    queue: str
    time_limit_seconds: int
    description: str
    retry: Retry | None
    module: str
    # How `fn` takes its arguments: the model itself, or its fields as keyword arguments.
    takes_model: bool = field(repr=False)
    takes_context: bool = field(repr=False)

    def args_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()

    def parse(self, args: Mapping[str, Any]) -> BaseModel:
        """The checked arguments; raises pydantic's ValidationError."""
        return self.args_model.model_validate(args)

    def run(self, parsed: BaseModel, ctx: Context) -> object:
        kwargs: dict[str, Any] = {CONTEXT_PARAMETER: ctx} if self.takes_context else {}
        if self.takes_model:
            return self.fn(parsed, **kwargs)
        return self.fn(
            **{name: getattr(parsed, name) for name in type(parsed).model_fields}, **kwargs
        )

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        """The function itself, so a module's own tests can call it directly."""
        return self.fn(*args, **kwargs)


_REGISTERED: dict[str, TaskDefinition] = {}


def registered() -> dict[str, TaskDefinition]:
    """Every task defined so far, by name (the worker imports the task modules first)."""
    return dict(_REGISTERED)


@overload
def task(fn: Callable[..., object], /) -> TaskDefinition: ...
@overload
def task(
    *,
    name: str | None = None,
    queue: str = "default",
    time_limit: int = 300,
    retry: Retry | None = None,
    description: str | None = None,
) -> Callable[[Callable[..., object]], TaskDefinition]: ...


def task(
    fn: Callable[..., object] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "default",
    time_limit: int = 300,
    retry: Retry | None = None,
    description: str | None = None,
) -> TaskDefinition | Callable[[Callable[..., object]], TaskDefinition]:
    """Define a task: `@task` or `@task(queue=..., time_limit=seconds, retry=Retry(...))`.

    The name defaults to the function's, the description to its docstring's first line; the
    time limit is the hard one (the task is killed past it; a soft one a little earlier raises
    celery's SoftTimeLimitExceeded inside it)."""

    def define(fn: Callable[..., object]) -> TaskDefinition:
        definition = _define(fn, name, queue, time_limit, retry, description)
        known = _REGISTERED.get(definition.name)
        if known is not None and (known.module, known.fn.__qualname__) != (
            definition.module,
            fn.__qualname__,
        ):
            raise ValueError(
                f"task {definition.name!r} is defined twice: in {known.module} and in "
                f"{definition.module}; give one of them another name"
            )
        _REGISTERED[definition.name] = definition
        return definition

    return define(fn) if fn is not None else define


def _define(
    fn: Callable[..., object],
    name: str | None,
    queue: str,
    time_limit: int,
    retry: Retry | None,
    description: str | None,
) -> TaskDefinition:
    task_name = name or fn.__name__
    where = f"task {task_name!r} ({fn.__module__}.{fn.__qualname__})"
    if not TASK_NAME.fullmatch(task_name):
        raise ValueError(f"{where}: a task name is letters, digits and _.:- (128 at most)")
    if not QUEUE_NAME.fullmatch(queue):
        raise ValueError(
            f"{where}: queue {queue!r} must be lowercase letters, digits, - and _ (63 at most)"
        )
    if not isinstance(time_limit, int) or time_limit < 1:
        raise ValueError(f"{where}: time_limit must be a whole number of seconds, at least 1")
    model, takes_model, takes_context = _arguments(fn, task_name, where)
    doc = inspect.getdoc(fn) or ""
    return TaskDefinition(
        name=task_name,
        fn=fn,
        args_model=model,
        queue=queue,
        time_limit_seconds=time_limit,
        description=description if description is not None else doc.split("\n\n")[0].strip(),
        retry=retry,
        module=fn.__module__,
        takes_model=takes_model,
        takes_context=takes_context,
    )


def _arguments(
    fn: Callable[..., object], task_name: str, where: str
) -> tuple[type[BaseModel], bool, bool]:
    """The arguments model of `fn`, whether it takes the model itself, whether it takes ctx."""
    hints = typing.get_type_hints(
        fn, globalns=vars(sys.modules[fn.__module__]), include_extras=True
    )
    parameters = [
        p for p in inspect.signature(fn).parameters.values() if p.name != CONTEXT_PARAMETER
    ]
    takes_context = len(parameters) < len(inspect.signature(fn).parameters)
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise TypeError(f"{where}: parameter {p.name!r}: no *args, **kwargs or positional-only")
        if p.name not in hints:
            raise TypeError(f"{where}: parameter {p.name!r} needs a type annotation")
    if len(parameters) == 1:
        only = hints[parameters[0].name]
        if isinstance(only, type) and issubclass(only, BaseModel):
            return only, True, takes_context
    fields: dict[str, Any] = {
        p.name: (hints[p.name], ... if p.default is p.empty else p.default) for p in parameters
    }
    model = create_model(_model_name(task_name), __base__=_Arguments, **fields)
    return model, False, takes_context


def _model_name(task_name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", task_name)) + "Args"
