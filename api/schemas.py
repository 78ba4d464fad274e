"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from contracts.catalogue import PRIORITY_MAX, PRIORITY_MIN, SEED_TASK_TYPES
from contracts.records import Field as F
from contracts.records import State

MAX_COUNTDOWN_SECONDS = 30 * 86400


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedSubmit(Strict):
    """The seed tutorial's body: a sleep of `type` * 10 seconds."""

    type: int = Field(
        ge=min(SEED_TASK_TYPES), le=max(SEED_TASK_TYPES), description="0 = at once, 1..3"
    )


class TaskSubmit(Strict):
    name: str = Field(description="A task name from the catalogue (GET /catalogue).")
    args: dict[str, Any] = Field(default_factory=dict, description="Checked against the task.")
    queue: str | None = Field(default=None, description="Overrides the task's own queue.")
    priority: int = Field(
        default=PRIORITY_MIN, ge=PRIORITY_MIN, le=PRIORITY_MAX, description="Higher runs first."
    )
    countdown: float = Field(default=0, ge=0, le=MAX_COUNTDOWN_SECONDS)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="Same key -> same task id; the task runs once.",
    )


def _submit_kind(body: Any) -> str:
    return "seed" if isinstance(body, dict) and "type" in body else "generic"


SubmitBody = Annotated[
    Annotated[SeedSubmit, Tag("seed")] | Annotated[TaskSubmit, Tag("generic")],
    Discriminator(_submit_kind),
]


class Submitted(BaseModel):
    task_id: str
    state: State
    created: bool = Field(description="False when an idempotency key matched an earlier task.")


class Progress(BaseModel):
    current: float
    total: float
    message: str = ""


class TaskError(BaseModel):
    type: str
    message: str
    traceback: str | None = None


class TaskView(BaseModel):
    task_id: str
    name: str
    queue: str
    priority: int
    state: State
    progress: Progress | None
    submitted_at: datetime
    due_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    retries: int
    worker: str | None = Field(description="Worker (and pool process) of the latest attempt.")
    worker_pid: int | None
    result: Any = None
    error: TaskError | None
    schedule: str | None = Field(default=None, description="The schedule that submitted it.")
    workflow: str | None = Field(default=None, description="The workflow it is a step of.")
    # The seed's field names, so its clients keep working.
    task_status: State
    task_result: Any = None

    @classmethod
    def from_record(cls, task_id: str, r: dict[str, str], *, tracebacks: bool) -> TaskView:
        state = State(r[F.STATE])
        result = orjson.loads(r[F.RESULT]) if F.RESULT in r else None
        error = None
        if F.ERROR_TYPE in r:
            error = TaskError(
                type=r[F.ERROR_TYPE],
                message=r.get(F.ERROR_MESSAGE, ""),
                traceback=r.get(F.TRACEBACK) if tracebacks else None,
            )
        return cls(
            task_id=task_id,
            name=r[F.NAME],
            queue=r[F.QUEUE],
            priority=int(r[F.PRIORITY]),
            state=state,
            progress=Progress(**orjson.loads(r[F.PROGRESS])) if F.PROGRESS in r else None,
            submitted_at=_time(r[F.SUBMITTED_AT]),
            due_at=_optional_time(r.get(F.DUE_AT)),
            started_at=_optional_time(r.get(F.STARTED_AT)),
            finished_at=_optional_time(r.get(F.FINISHED_AT)),
            attempts=int(r.get(F.ATTEMPTS, 0)),
            retries=int(r.get(F.RETRIES, 0)),
            worker=r.get(F.WORKER),
            worker_pid=int(r[F.PID]) if F.PID in r else None,
            result=result,
            error=error,
            schedule=r.get(F.SCHEDULE),
            workflow=r.get(F.WORKFLOW),
            task_status=state,
            task_result=result if state == State.SUCCESS else (error.message if error else None),
        )


def _time(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _optional_time(ms: str | None) -> datetime | None:
    return _time(ms) if ms else None


class TaskArgs(BaseModel):
    task_id: str
    args: dict[str, Any] | None = Field(
        description="The arguments it was submitted with; null once it succeeded (the record of "
        "a success keeps its result, not its arguments)."
    )


class TaskPage(BaseModel):
    items: list[TaskView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next, older page.")


class QueueView(BaseModel):
    name: str
    ready: int = Field(description="Waiting, summed over all the queue's priority lists.")
    in_flight: int = Field(description="Delivered to a worker, not yet acknowledged.")
    backlog: int = Field(description="ready + in_flight: what autoscaling looks at.")
    oldest_age_seconds: float = Field(description="Age of the oldest waiting message, 0 if none.")
    workers: int = Field(description="Live workers consuming this queue.")
    max_backlog: int


class QueuesView(BaseModel):
    queues: list[QueueView]
    delayed: int = Field(description="Tasks waiting for a countdown or a retry backoff.")
    dead_letters: int
    workers: int


class CatalogueEntry(BaseModel):
    name: str
    queue: str
    description: str
    time_limit_seconds: int
    max_retries: int
    args_schema: dict[str, Any]


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[dict[str, str]] | None = None


class Cancelled(BaseModel):
    task_id: str
    state: State
    outcome: Literal["revoked"]


SCHEDULE_NAME = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"


class ScheduleBody(Strict):
    """A schedule as written: POST /schedules, and what a PATCH is merged into."""

    name: str = Field(pattern=SCHEDULE_NAME, description="Lower case, digits, . _ -; 63 at most.")
    task: str = Field(description="A task name from the catalogue (GET /catalogue).")
    args: dict[str, Any] = Field(default_factory=dict, description="Checked against the task.")
    queue: str | None = Field(default=None, description="Overrides the task's own queue.")
    priority: int = Field(default=PRIORITY_MIN, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    cron: str | None = Field(
        default=None, max_length=200, description="Five fields, as Debian's cron reads them."
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA name, for cron.")
    interval_seconds: float | None = Field(
        default=None, ge=1, le=366 * 86400, description="Instead of cron: every N seconds."
    )
    paused: bool = False
    misfire: Literal["skip", "catch_up"] = Field(
        default="skip",
        description="Ticks missed for over a minute (no scheduler ran): skip runs once for them, "
        "catch_up runs the newest catch_up_max of them.",
    )
    catch_up_max: int = Field(default=10, ge=1, le=1000)


class SchedulePatch(Strict):
    """Fields to change; the rest stay. Setting cron clears interval_seconds and back."""

    task: str | None = None
    args: dict[str, Any] | None = None
    queue: str | None = None
    priority: int | None = Field(default=None, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    cron: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    interval_seconds: float | None = Field(default=None, ge=1, le=366 * 86400)
    paused: bool | None = None
    misfire: Literal["skip", "catch_up"] | None = None
    catch_up_max: int | None = Field(default=None, ge=1, le=1000)


class ScheduleView(ScheduleBody):
    queue: str = Field(description="The queue its runs go to.")
    next_run_at: datetime | None = Field(description="None while paused.")
    last_run_at: datetime | None = Field(description="The tick of the newest run.")
    last_task_id: str | None


class ScheduleList(BaseModel):
    items: list[ScheduleView]


# Workflows (api/workflows.py plans them; docs/workflows.md).
MAX_WORKFLOW_DEPTH = 5  # chains, groups and chords inside one another
ARGUMENT_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class WorkflowTask(Strict):
    task: str = Field(description="A task name from the catalogue (GET /catalogue).")
    args: dict[str, Any] = Field(default_factory=dict, description="Checked against the task.")
    queue: str | None = Field(default=None, description="Overrides the task's own queue.")
    priority: int = Field(default=PRIORITY_MIN, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    input: str | None = Field(
        default=None,
        pattern=ARGUMENT_NAME,
        description="The argument that takes the previous step's result (after a group, or as "
        "a chord's callback: the list of its members' results). Leave it out of args.",
    )


class Chain(Strict):
    chain: list[WorkflowNode] = Field(
        min_length=1, description="One after another; a step that does not succeed stops it."
    )


class Group(Strict):
    group: list[WorkflowNode] = Field(
        min_length=1, description="Side by side; every member runs whatever the others do."
    )


class Chord(Strict):
    chord: list[WorkflowNode] = Field(min_length=1, description="A group, then `then`.")
    then: WorkflowNode = Field(description="Runs once every member succeeded.")


# The key that tells each kind of node, and its union tag (which error locations leave out).
_NODE_KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "task": (WorkflowTask, "task-node"),
    "chain": (Chain, "chain-node"),
    "group": (Group, "group-node"),
    "chord": (Chord, "chord-node"),
}


def _node_kind(body: Any) -> str | None:
    for key, (model, tag) in _NODE_KINDS.items():
        if (key in body) if isinstance(body, dict) else isinstance(body, model):
            return tag
    return None


WorkflowNode = Annotated[
    Annotated[WorkflowTask, Tag("task-node")]
    | Annotated[Chain, Tag("chain-node")]
    | Annotated[Group, Tag("group-node")]
    | Annotated[Chord, Tag("chord-node")],
    Discriminator(
        _node_kind,
        custom_error_type="workflow_node",
        custom_error_message="a step is an object with one of task, chain, group or chord",
    ),
]
for _model in (Chain, Group, Chord):
    _model.model_rebuild()
UNION_TAGS = frozenset({"seed", "generic", *(tag for _, tag in _NODE_KINDS.values())})


class WorkflowStep(BaseModel):
    step: int = Field(description="Its index: steps are numbered in the order they were given.")
    task_id: str
    name: str
    state: State
    after: list[int] = Field(description="The steps it waits for.")


class WorkflowView(BaseModel):
    workflow_id: str
    state: State = Field(description="STARTED once a step is no longer PENDING.")
    submitted_at: datetime
    finished_at: datetime | None
    counts: dict[State, int] = Field(description="Steps per state.")
    steps: list[WorkflowStep]
    result: Any = Field(
        default=None,
        description="After a SUCCESS: the last step's result (a group's: the list of its "
        "members' results).",
    )


class WorkflowSubmitted(BaseModel):
    workflow_id: str
    state: State
    task_ids: list[str] = Field(description="Each step's task id, in step order.")


class WorkflowPage(BaseModel):
    items: list[WorkflowView]


class WorkflowCancelled(BaseModel):
    workflow_id: str
    state: State
    outcome: Literal["revoked"]
