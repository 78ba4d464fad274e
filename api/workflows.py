"""Workflows: chains, groups and chords of catalogue tasks, planned here into steps that
contracts/lua/workflow_submit.lua writes in one step, and read back for GET /workflows/{id}.

A workflow is a graph of steps, each a task with a record of its own that waits for the steps
before it: a chain's element for the previous element's last steps, a group's members for what
the group waits for, a chord's callback for every member. What a step with `input` takes is a
value made of results: a task's own result, a chain's last element's, a group's list of its
members'. Both are fixed here, at submit; the Lua scripts only count down and copy results
(`step_ended` in contracts/lua/_lib.lua), so a step moves on in the same atomic step that ends
the one before it (docs/workflows.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from api.catalogue import Location
from api.errors import invalid
from api.exceptions import BacklogFull, WorkflowExpired, WorkflowNotFound
from api.schemas import (
    MAX_WORKFLOW_DEPTH,
    Chain,
    Chord,
    Group,
    WorkflowNode,
    WorkflowStep,
    WorkflowTask,
    WorkflowView,
)
from contracts import records, scripts
from contracts.catalogue import TaskSpec
from contracts.messages import build_message
from contracts.records import TERMINAL_STATES, State, StepPart, WorkflowField, now_ms, step_field
from contracts.scripts import Named
from contracts.settings import Settings
from contracts.submission import max_backlog

# What a step's `input` takes (and a workflow's result is): a step's result, or a list of such.
Source = int | list["Source"]


@dataclass(frozen=True)
class PlannedStep:
    task: WorkflowTask
    at: Location  # where it is in the request body, for errors
    after: tuple[int, ...]
    takes: Source | None  # what its `input` argument gets


@dataclass
class Plan:
    steps: list[PlannedStep]
    result: Source


def plan(root: WorkflowNode, max_steps: int) -> Plan:
    """The steps of a workflow in the order the request gives them (RequestValidationError
    for one nested too deep, too many steps, or an `input` with no step before it)."""
    steps: list[PlannedStep] = []

    def node(
        part: WorkflowNode,
        at: Location,
        depth: int,
        previous: Source | None,
        after: tuple[int, ...],
    ) -> tuple[Source, tuple[int, ...]]:
        """Plan `part`: (what it gives the step after it, the steps that one waits for)."""
        match part:
            case WorkflowTask():
                if part.input and previous is None:
                    raise invalid(((*at, "input"), "no step before this one gives it a result"))
                if len(steps) == max_steps:
                    raise invalid((("body",), f"a workflow has at most {max_steps} steps"))
                steps.append(PlannedStep(part, at, after, previous if part.input else None))
                return len(steps) - 1, (len(steps) - 1,)
            case _ if depth == MAX_WORKFLOW_DEPTH:
                raise invalid((at, f"nested deeper than {MAX_WORKFLOW_DEPTH} levels"))
            case Chain():
                given: Source | None = previous
                for k, element in enumerate(part.chain):
                    given, after = node(element, (*at, "chain", k), depth + 1, given, after)
                assert given is not None  # a chain has an element
                return given, after
            case Group():
                return members(part.group, (*at, "group"), depth, previous, after)
            case Chord():
                value, ends = members(part.chord, (*at, "chord"), depth, previous, after)
                return node(part.then, (*at, "then"), depth + 1, value, ends)
        raise AssertionError(part)

    def members(
        parts: list[WorkflowNode],
        at: Location,
        depth: int,
        previous: Source | None,
        after: tuple[int, ...],
    ) -> tuple[Source, tuple[int, ...]]:
        values: list[Source] = []
        ends: list[int] = []
        for k, member in enumerate(parts):
            value, last = node(member, (*at, k), depth + 1, previous, after)
            values.append(value)
            ends.extend(last)
        return values, tuple(ends)

    result, _ = node(root, ("body",), 0, None, ())
    return Plan(steps, result)


def check_input(step: PlannedStep, spec: TaskSpec) -> None:
    """A step's `input` names one of its task's arguments, and one `args` leaves out."""
    field = step.task.input
    if field is None:
        return
    if field not in spec.args_schema.get("properties", {}):
        raise invalid(((*step.at, "input"), f"task {spec.name!r} has no argument {field!r}"))
    if field in step.task.args:
        raise invalid(((*step.at, "args", field), "the previous step gives this argument (input)"))


def _time(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _render(source: Source, results: dict[int, Any]) -> Any:
    if isinstance(source, int):
        return results.get(source)
    return [_render(each, results) for each in source]


def submit_call(
    settings: Settings, planned: Plan, checked: list[tuple[TaskSpec, str]], now: int
) -> tuple[str, list[str], dict[str, Named]]:
    """The new workflow's id, its steps' task ids, and workflow_submit.lua's arguments."""
    workflow_id = uuid.uuid4().hex
    task_ids = [uuid.uuid4().hex for _ in planned.steps]
    following: list[list[int]] = [[] for _ in planned.steps]
    for n, step in enumerate(planned.steps):
        for before in set(step.after):
            following[before].append(n)
    steps = []
    for n, (step, (spec, queue)) in enumerate(zip(planned.steps, checked, strict=True)):
        queue_list, message = build_message(
            spec.name,
            task_ids[n],
            step.task.args,
            queue=queue,
            priority=step.task.priority,
            retries=0,
            published_at_ms=now,
            version=spec.version,
        )
        takes = {"field": step.task.input, "from": step.takes}
        steps.append(
            {
                "id": task_ids[n],
                "name": spec.name,
                "queue": queue,
                "priority": step.task.priority,
                "args": orjson.dumps(step.task.args).decode(),
                "input": orjson.dumps(takes).decode() if step.task.input else "",
                "next": orjson.dumps(sorted(following[n])).decode(),
                "wait": len(set(step.after)),
                "list": queue_list,
                "message": message.decode(),
            }
        )
    backlog = [
        {"queue": q, "lists": records.queue_lists(q), "max": max_backlog(settings, q)}
        for q in sorted({queue for _, queue in checked})
    ]
    named: dict[str, Named] = {
        "id": workflow_id,
        "now": now,
        "steps": orjson.dumps(steps),
        "result": orjson.dumps(planned.result),
        "backlog": orjson.dumps(backlog),
        "tombstone_ms": settings.tombstone_ttl_seconds * 1000,
    }
    return workflow_id, task_ids, named


class WorkflowStore:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._submit = redis.register_script(scripts.WORKFLOW_SUBMIT.source)
        self._cancel = redis.register_script(scripts.WORKFLOW_CANCEL.source)

    async def submit(
        self, planned: Plan, checked: list[tuple[TaskSpec, str]]
    ) -> tuple[str, list[str]]:
        """Write the workflow (`checked`: each step's spec and queue); its id and its steps'
        task ids. BacklogFull when a queue a step goes to is full: nothing is written then."""
        workflow_id, task_ids, named = submit_call(self.settings, planned, checked, now_ms())
        keys, args = scripts.WORKFLOW_SUBMIT.bind(**named)
        outcome, *full = await self._submit(keys=keys, args=args)
        if outcome == b"full":
            queue, ready = full[0].decode(), int(full[1])
            raise BacklogFull(queue, ready, max_backlog(self.settings, queue))
        return workflow_id, task_ids

    async def get(self, workflow_id: str) -> WorkflowView:
        key = records.workflow_key(workflow_id)
        raw: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[assignment]
        if not raw:
            if await self.redis.zscore(records.WORKFLOWS_INDEX, workflow_id) is None:
                raise WorkflowNotFound(workflow_id)
            raise WorkflowExpired(workflow_id)
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        count = int(fields[WorkflowField.STEPS])
        part = {
            (n, p): fields.get(step_field(str(n), p))
            for n in range(count)
            for p in (StepPart.ID, StepPart.NAME, StepPart.STATE, StepPart.NEXT)
        }
        # A step that has not ended has its state in its record only.
        running = [n for n in range(count) if part[n, StepPart.STATE] is None]
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in running:
                pipe.hget(records.record_key(str(part[n, StepPart.ID])), records.Field.STATE)
            live = dict(zip(running, await pipe.execute(), strict=True))
        after: list[list[int]] = [[] for _ in range(count)]
        for n in range(count):
            for later in orjson.loads(part[n, StepPart.NEXT] or "[]"):
                after[later].append(n)
        steps = [
            WorkflowStep(
                step=n,
                task_id=str(part[n, StepPart.ID]),
                name=str(part[n, StepPart.NAME]),
                state=State(part[n, StepPart.STATE] or (live.get(n) or b"PENDING").decode()),
                after=after[n],
            )
            for n in range(count)
        ]
        counts = dict.fromkeys(State, 0)
        for step in steps:
            counts[step.state] += 1
        state = State(fields[WorkflowField.STATE])
        if state not in TERMINAL_STATES and counts[State.PENDING] < count:
            state = State.STARTED
        result = None
        if state == State.SUCCESS:
            results = {
                n: orjson.loads(fields[step_field(str(n), StepPart.RESULT)])
                for n in range(count)
                if step_field(str(n), StepPart.RESULT) in fields
            }
            result = _render(orjson.loads(fields[WorkflowField.RESULT]), results)
        return WorkflowView(
            workflow_id=workflow_id,
            state=state,
            submitted_at=_time(fields[WorkflowField.SUBMITTED_AT]),
            finished_at=_time(fields[WorkflowField.FINISHED_AT])
            if WorkflowField.FINISHED_AT in fields
            else None,
            counts=counts,
            steps=steps,
            result=result,
        )

    async def recent(self, limit: int) -> list[WorkflowView]:
        """The newest workflows whose records are kept, newest first."""
        ids: list[bytes] = await self.redis.zrange(  # type: ignore[assignment]
            records.WORKFLOWS_INDEX, 0, limit * 4, desc=True
        )
        views = []
        for raw in ids:
            try:
                views.append(await self.get(raw.decode()))
            except (WorkflowNotFound, WorkflowExpired):
                continue
            if len(views) == limit:
                break
        return views

    async def cancel(self, workflow_id: str) -> tuple[str, str]:
        """('revoked' | 'terminal' | 'expired' | 'missing', the state it was in)."""
        keys, args = scripts.WORKFLOW_CANCEL.bind(
            id=workflow_id, now=now_ms(), ttl=self.settings.record_ttl_seconds
        )
        outcome, before = await self._cancel(keys=keys, args=args)
        if outcome == b"missing":
            raise WorkflowNotFound(workflow_id)
        if outcome == b"expired":
            raise WorkflowExpired(workflow_id)
        return outcome.decode(), before.decode()
