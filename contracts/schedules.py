"""Schedules as API and scheduler share them: the stored definition, when it fires, and which of
its due ticks a scheduler submits.

A schedule fires at ticks: the times of its cron expression in its time zone (cronsim, which
follows Debian's cron through daylight-saving changes: a time skipped in spring runs at the
first minute after the gap, a repeated one in autumn runs once), or every `interval_seconds`
from its anchor. A tick is submitted as a task with the idempotency key `schedule:NAME:TICK`,
so two schedulers (or one that crashed after submitting and retried) cannot run a tick twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from itertools import islice, takewhile
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from cronsim import CronSim

Misfire = Literal["skip", "catch_up"]

# A tick later than this when it is looked at is missed: its schedule's misfire policy decides.
MISFIRE_GRACE_MS = 60_000
# The most due ticks looked at in one pass (a 1 s schedule after a long outage has many).
MAX_TICKS_PER_PASS = 10_000


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    args: dict[str, Any]
    queue: str
    priority: int
    cron: str | None
    timezone: str
    interval_seconds: float | None
    paused: bool
    misfire: Misfire
    catch_up_max: int
    # Its ticks come after this: set at creation, on resume and when its timing changes, so that
    # none of them fires runs from before (an interval's first tick is one interval later).
    anchor_ms: int

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Schedule:
        return cls(**orjson.loads(raw))

    def reanchored(self, now_ms: int) -> Schedule:
        return replace(self, anchor_ms=now_ms)

    def ticks_after(self, after_ms: int) -> Iterator[int]:
        """The schedule's ticks (ms) after `after_ms` and after its anchor."""
        start = max(after_ms, self.anchor_ms)
        if self.interval_seconds is not None:
            step = int(self.interval_seconds * 1000)
            tick = self.anchor_ms + ((start - self.anchor_ms) // step + 1) * step
            while True:
                yield tick
                tick += step
        assert self.cron is not None
        local = datetime.fromtimestamp(start / 1000, UTC).astimezone(ZoneInfo(self.timezone))
        for when in CronSim(self.cron, local):
            yield int(when.timestamp() * 1000)

    def next_after(self, after_ms: int) -> int | None:
        return next(iter(self.ticks_after(after_ms)), None)


def tick_key(name: str, tick_ms: int) -> str:
    """The idempotency key of a schedule's run at a tick."""
    return f"schedule:{name}:{tick_ms}"


@dataclass(frozen=True)
class Plan:
    fire: list[int]  # ticks to submit now, oldest first
    missed: int  # due ticks that will never run (the misfire policy dropped them)
    through: int  # the newest due tick: the next pass looks after it


def plan(schedule: Schedule, last_ms: int, now_ms: int) -> Plan | None:
    """Which ticks after `last_ms` (the newest tick already fired) to submit at `now_ms`; None
    when none is due. Ticks within MISFIRE_GRACE_MS of now all fire (a scheduler that took over
    from a dead one fires what it missed). Older ones are missed: `skip` fires the newest of them
    once unless a tick within grace fires anyway, `catch_up` fires the newest `catch_up_max`."""
    ticks = islice(schedule.ticks_after(last_ms), MAX_TICKS_PER_PASS)
    due = list(takewhile(lambda tick: tick <= now_ms, ticks))
    if not due:
        return None
    if len(due) == MAX_TICKS_PER_PASS and now_ms - due[-1] > MISFIRE_GRACE_MS:
        return Plan(fire=[], missed=len(due), through=due[-1])  # more follow: decide on the last
    late = [tick for tick in due if now_ms - tick > MISFIRE_GRACE_MS]
    on_time = due[len(late) :]
    if schedule.misfire == "catch_up":
        kept = late[-schedule.catch_up_max :] if schedule.catch_up_max else []
    else:
        kept = late[-1:] if late and not on_time else []
    return Plan(fire=kept + on_time, missed=len(late) - len(kept), through=due[-1])


@dataclass(frozen=True)
class Progress:
    """What the scheduler has done for a schedule (records.SCHEDULE_RUNS)."""

    through_ms: int  # the newest tick looked at: fired or missed
    last_run_ms: int | None = None  # the newest tick that was submitted
    last_task_id: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> Progress:
        return cls(**orjson.loads(raw)) if raw else cls(through_ms=0)
