"""`kubetasks`, the command line (docs/cli.md): the client's calls, tables for people, JSON for
scripts, and a live progress bar while a task runs.

Exit codes: 0 done (a waited task succeeded); 1 a waited task failed or was revoked; 2 bad usage
(Click's own); 3 the API answered an error; 4 the wait timed out; 5 the API could not be reached.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import httpx
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kubetasks_client.client import Client
from kubetasks_client.errors import InvalidArguments, KubetasksError, WaitTimeout
from kubetasks_client.models import State, TaskView

EXIT_TASK_FAILED, EXIT_API_ERROR, EXIT_TIMEOUT, EXIT_UNREACHABLE = 1, 3, 4, 5
TASK_COLUMNS = ("task_id", "name", "state", "queue", "submitted_at", "finished_at")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Context:
    def __init__(self, url: str | None, api_key: str | None, output: str) -> None:
        self.url, self.api_key, self.json = url, api_key, output == "json"

    @contextmanager
    def client(self) -> Iterator[Client]:
        """The client; the API's errors and unreachability as messages and exit codes."""
        try:
            with Client(self.url, self.api_key) as client:
                yield client
        except InvalidArguments as error:  # a line a field (the message repeats the first)
            for field in error.fields or [{"field": "request", "message": error.message}]:
                err.print(f"{field.get('field')}: {field.get('message')}", markup=False)
            sys.exit(EXIT_API_ERROR)
        except KubetasksError as error:
            err.print(str(error), markup=False)
            sys.exit(EXIT_API_ERROR)
        except httpx.TransportError as error:
            err.print(f"cannot reach the API: {error}", markup=False)
            sys.exit(EXIT_UNREACHABLE)

    def show(self, value: BaseModel | Sequence[BaseModel], table: Callable[[], Table]) -> None:
        if self.json:
            out.print_json(_dumps(value))
        else:
            out.print(table())


def _dumps(value: BaseModel | Sequence[BaseModel]) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps([item.model_dump(mode="json") for item in value])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


def _rows(title: str, columns: Sequence[str], items: Sequence[BaseModel]) -> Table:
    table = Table(*columns, title=title)
    for item in items:
        table.add_row(*(_cell(getattr(item, column)) for column in columns))
    return table


def _details(view: TaskView) -> Table:
    table = Table("field", "value", title=f"task {view.task_id}", show_header=False)
    for field, value in view.model_dump(mode="json").items():
        if field not in ("task_status", "task_result"):  # Celery's spellings of state, result
            table.add_row(field, _cell(value))
    return table


@click.group()
@click.option("--url", envvar="KUBETASKS_URL", help="The API (default $KUBETASKS_URL).")
@click.option("--api-key", envvar="KUBETASKS_API_KEY", help="Default $KUBETASKS_API_KEY.")
@click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_context
def main(ctx: click.Context, url: str | None, api_key: str | None, output: str) -> None:
    """Submit, follow and manage kubetasks tasks."""
    ctx.obj = Context(url, api_key, output)


pass_context = click.make_pass_decorator(Context)


def typed_args(pairs: Sequence[str], schema: dict[str, Any]) -> dict[str, Any]:
    """`key=value` pairs as the task's JSON schema types them: a number, boolean, array or
    object property is read as JSON, anything else kept as the string given."""
    properties: dict[str, Any] = schema.get("properties", {})
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="ARGS")
        kinds = _json_types(properties.get(key, {}))
        if kinds and not kinds <= {"string"}:
            try:
                args[key] = json.loads(text)
            except json.JSONDecodeError:
                if "string" not in kinds:
                    raise click.BadParameter(
                        f"{key} takes {' or '.join(sorted(kinds))}, not {text!r}",
                        param_hint="ARGS",
                    ) from None
                args[key] = text
        else:
            args[key] = text
    return args


def _json_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property's schema allows (pydantic writes `anyOf` for unions)."""
    kinds = schema.get("type")
    found = {kinds} if isinstance(kinds, str) else set(kinds or ())
    for option in schema.get("anyOf", []):
        found |= _json_types(option)
    if "enum" in schema and not found:
        found = {type(v).__name__.replace("str", "string") for v in schema["enum"]}
    return found - {"null"}


@main.command()
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option("--json", "json_args", help="The arguments as one JSON object instead.")
@click.option("--queue")
@click.option("--priority", type=click.IntRange(0, 9))
@click.option("--countdown", type=float, help="Seconds before it may start.")
@click.option("--idempotency-key")
@click.option("--wait", is_flag=True, help="Follow it to its end with a progress bar.")
@click.option("--timeout", type=float, help="Seconds to wait at most (with --wait).")
@pass_context
def submit(
    ctx: Context,
    name: str,
    args: tuple[str, ...],
    json_args: str | None,
    queue: str | None,
    priority: int | None,
    countdown: float | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Queue task NAME with ARGS given as key=value (typed by the task's schema) or --json."""
    with ctx.client() as client:
        if json_args is not None:
            if args:
                raise click.UsageError("give the arguments as key=value or --json, not both")
            try:
                given = json.loads(json_args)
            except json.JSONDecodeError as error:
                raise click.BadParameter(str(error), param_hint="--json") from None
        else:
            schemas = {entry.name: entry.args_schema for entry in client.catalogue()}
            given = typed_args(args, schemas.get(name, {}))
        task = client.submit(
            name,
            given,
            queue=queue,
            priority=priority,
            countdown=countdown,
            idempotency_key=idempotency_key,
        )
        if not wait:
            if ctx.json:
                out.print_json(json.dumps({"task_id": task.id, "created": task.created}))
            else:
                out.print(task.id)
            return
        _follow(ctx, client, task.id, timeout)


@main.command()
@click.argument("task_id")
@pass_context
def get(ctx: Context, task_id: str) -> None:
    """One task's view."""
    with ctx.client() as client:
        view = client.get(task_id)
        ctx.show(view, lambda: _details(view))


@main.command()
@click.argument("task_id")
@click.option("--timeout", type=float, help="Seconds to wait at most.")
@pass_context
def watch(ctx: Context, task_id: str, timeout: float | None) -> None:
    """Follow a task to its end with a progress bar; its result, or its error."""
    with ctx.client() as client:
        _follow(ctx, client, task_id, timeout)


@main.command(name="ls")
@click.option("--state", type=click.Choice([s.value for s in State], case_sensitive=False))
@click.option("--name")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@pass_context
def list_tasks(ctx: Context, state: str | None, name: str | None, limit: int) -> None:
    """The newest tasks, filtered by state and/or name."""
    with ctx.client() as client:
        found: list[TaskView] = []
        for view in client.list(state.upper() if state else None, name, page_size=limit):
            found.append(view)
            if len(found) == limit:
                break
        ctx.show(found, lambda: _rows("tasks", TASK_COLUMNS, found))


@main.command()
@click.argument("task_id")
@pass_context
def cancel(ctx: Context, task_id: str) -> None:
    """Cancel a task that has not ended."""
    with ctx.client() as client:
        cancelled = client.cancel(task_id)
        ctx.show(cancelled, lambda: _rows("cancelled", ("task_id", "state"), [cancelled]))


@main.command()
@pass_context
def queues(ctx: Context) -> None:
    """Each queue's backlog, in flight, oldest age and workers."""
    with ctx.client() as client:
        view = client.queues()
        columns = ("name", "ready", "in_flight", "backlog", "oldest_age_seconds", "workers")
        ctx.show(view, lambda: _rows("queues", columns, view.queues))


@main.group()
def deadletters() -> None:
    """Tasks that failed for good: list, requeue, discard."""


@deadletters.command(name="ls")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@pass_context
def dead_ls(ctx: Context, limit: int) -> None:
    """The dead letters, newest first."""
    with ctx.client() as client:
        dead = client.dead_letters(limit)
        ctx.show(dead, lambda: _rows("dead letters", TASK_COLUMNS, dead))


@deadletters.command()
@click.argument("task_id")
@pass_context
def requeue(ctx: Context, task_id: str) -> None:
    """Queue a dead letter again, as a new task."""
    with ctx.client() as client:
        task = client.requeue_dead_letter(task_id)
        out.print_json(json.dumps({"task_id": task.id})) if ctx.json else out.print(task.id)


@deadletters.command()
@click.argument("task_id")
@pass_context
def discard(ctx: Context, task_id: str) -> None:
    """Forget a dead letter."""
    with ctx.client() as client:
        client.discard_dead_letter(task_id)


def _follow(ctx: Context, client: Client, task_id: str, timeout: float | None) -> None:
    """The task followed to its end: a progress bar on a terminal (none for --output json),
    then its result or its error, and the exit code that says which."""
    started = time.monotonic()
    with Progress(
        TextColumn("{task.fields[state]:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        disable=ctx.json,
        transient=False,
    ) as progress:
        bar = progress.add_task("", total=None, state="")

        def update(view: TaskView) -> None:
            report = view.progress
            progress.update(
                bar,
                state=view.state.value,
                description=report.message if report else "",
                completed=report.current if report else 0,
                total=report.total if report else None,
            )

        try:
            view = client.wait(task_id, timeout, on_update=update)
        except WaitTimeout as error:
            err.print(str(error), markup=False)
            sys.exit(EXIT_TIMEOUT)
        update(view)
    if ctx.json:
        out.print_json(view.model_dump_json())
    elif view.state == State.SUCCESS:
        out.print_json(json.dumps(view.result))
    elif view.error is not None:
        err.print(f"{view.state.value}: {view.error.type}: {view.error.message}", markup=False)
    else:
        err.print(f"{view.state.value} after {time.monotonic() - started:.1f} s", markup=False)
    if view.state != State.SUCCESS:
        sys.exit(EXIT_TASK_FAILED)


if __name__ == "__main__":
    main()
