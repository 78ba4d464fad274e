"""Create, read, change and delete schedules; `python -m scheduler` fires them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis.exceptions
from cronsim import CronSim, CronSimError
from fastapi import APIRouter, Body, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import AUTHORIZED_RAISES, Authorized, StoreDep
from api.errors import invalid, responses
from api.exceptions import BodyTooLarge, ScheduleExists, ScheduleNotFound
from api.routes.tasks import checked_task
from api.schemas import ScheduleBody, ScheduleList, SchedulePatch, ScheduleView
from api.store import TaskStore
from contracts.records import now_ms
from contracts.schedules import Progress, Schedule

router = APIRouter(
    prefix="/schedules",
    tags=["schedules"],
    dependencies=[Authorized],
    responses=responses(*AUTHORIZED_RAISES, RequestValidationError, redis.exceptions.RedisError),
)

# Changing one of these starts the schedule's ticks afresh from now (so do resuming and creating).
_TIMING = ("cron", "timezone", "interval_seconds")


async def _checked(store: TaskStore, body: ScheduleBody, anchor_ms: int) -> Schedule:
    if (body.cron is None) == (body.interval_seconds is None):
        raise invalid((("body", "cron"), "give either cron or interval_seconds"))
    try:
        zone = ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid((("body", "timezone"), f"unknown time zone {body.timezone!r}")) from None
    if body.cron is not None:
        try:
            CronSim(body.cron, datetime.now(zone))
        except CronSimError as exc:
            raise invalid((("body", "cron"), f"not a cron expression: {exc}")) from None
    _, queue = await checked_task(store, body.task, body.args, body.queue, field="task")
    return Schedule(**body.model_dump(exclude={"queue"}), queue=queue, anchor_ms=anchor_ms)


def _view(schedule: Schedule, progress: Progress) -> ScheduleView:
    upcoming = None
    if not schedule.paused:
        upcoming = schedule.next_after(max(progress.through_ms, now_ms()))
    fields = asdict(schedule)
    del fields["anchor_ms"]
    return ScheduleView(
        **fields,
        next_run_at=_time(upcoming),
        last_run_at=_time(progress.last_run_ms),
        last_task_id=progress.last_task_id,
    )


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


async def _found(store: TaskStore, name: str) -> tuple[Schedule, Progress]:
    found = await store.schedules.get(name)
    if found is None:
        raise ScheduleNotFound(name)
    return found


@router.post(
    "",
    status_code=201,
    response_model=ScheduleView,
    responses=responses(400, BodyTooLarge, ScheduleExists),
    summary="Create a schedule",
)
async def create(body: Annotated[ScheduleBody, Body()], store: StoreDep, response: Response) -> Any:
    schedule = await _checked(store, body, now_ms())
    if not await store.schedules.create(schedule):
        raise ScheduleExists(body.name)
    response.headers["Location"] = f"/schedules/{schedule.name}"
    return _view(schedule, Progress(through_ms=0))


@router.get("", response_model=ScheduleList, summary="List schedules by name")
async def list_schedules(store: StoreDep) -> Any:
    return ScheduleList(items=[_view(s, p) for s, p in await store.schedules.all()])


@router.get(
    "/{name}",
    response_model=ScheduleView,
    responses=responses(ScheduleNotFound),
    summary="A schedule, its next run and its last",
)
async def get_schedule(name: str, store: StoreDep) -> Any:
    return _view(*await _found(store, name))


@router.patch(
    "/{name}",
    response_model=ScheduleView,
    responses=responses(400, BodyTooLarge, ScheduleNotFound),
    summary="Change a schedule: pause, resume, retime, other arguments",
)
async def change(name: str, body: Annotated[SchedulePatch, Body()], store: StoreDep) -> Any:
    current, progress = await _found(store, name)
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("cron") is not None:
        changes.setdefault("interval_seconds", None)
    if changes.get("interval_seconds") is not None:
        changes.setdefault("cron", None)
    merged = {**_body_fields(current), **changes}
    try:
        checked_body = ScheduleBody(**merged)
    except ValidationError as exc:  # a null for a field that needs a value
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None
    retimed = any(merged[f] != getattr(current, f) for f in _TIMING)
    resumed = current.paused and not checked_body.paused
    anchor = now_ms() if retimed or resumed else current.anchor_ms
    schedule = await _checked(store, checked_body, anchor)
    await store.schedules.replace(schedule)
    return _view(schedule, progress)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=responses(ScheduleNotFound),
    summary="Delete a schedule (its past runs stay)",
)
async def delete(name: str, store: StoreDep) -> Response:
    if not await store.schedules.delete(name):
        raise ScheduleNotFound(name)
    return Response(status_code=204)


def _body_fields(schedule: Schedule) -> dict[str, Any]:
    return {f: getattr(schedule, f) for f in ScheduleBody.model_fields}
