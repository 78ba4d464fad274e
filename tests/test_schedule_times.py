"""When a schedule fires (contracts.schedules): intervals from their anchor, cron in a time zone
through daylight-saving changes, and which due ticks a scheduler submits after a gap."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from itertools import islice
from zoneinfo import ZoneInfo

from contracts.schedules import MISFIRE_GRACE_MS, Schedule, plan


def ms(text: str) -> int:
    """An ISO time with its offset -> ms since the epoch."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(tick: int, zone: str = "UTC") -> str:
    return datetime.fromtimestamp(tick / 1000, UTC).astimezone(ZoneInfo(zone)).isoformat()


BASE = Schedule(
    name="s", task="sleep", args={}, queue="default", priority=0, cron=None, timezone="UTC",
    interval_seconds=None, paused=False, misfire="skip", catch_up_max=3,
    anchor_ms=ms("2026-01-01T00:00:00+00:00"),
)  # fmt: skip


def cron(expression: str, zone: str, anchor: str = "2026-01-01T00:00:00+00:00") -> Schedule:
    return replace(BASE, cron=expression, timezone=zone, anchor_ms=ms(anchor))


def every(seconds: float) -> Schedule:
    return replace(BASE, interval_seconds=seconds)


def test_an_interval_ticks_from_its_anchor_and_never_before() -> None:
    schedule = every(90)
    assert list(islice(schedule.ticks_after(0), 3)) == [
        BASE.anchor_ms + 90_000, BASE.anchor_ms + 180_000, BASE.anchor_ms + 270_000
    ]  # fmt: skip
    assert schedule.next_after(BASE.anchor_ms + 100_000) == BASE.anchor_ms + 180_000
    assert schedule.next_after(BASE.anchor_ms + 180_000) == BASE.anchor_ms + 270_000


def test_cron_follows_its_time_zone_across_a_daylight_saving_change() -> None:
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC from 29 March 2026.
    schedule = cron("0 9 * * *", "Europe/Berlin", "2026-03-27T12:00:00+00:00")
    ticks = list(islice(schedule.ticks_after(0), 3))
    assert [iso(t) for t in ticks] == [
        "2026-03-28T08:00:00+00:00", "2026-03-29T07:00:00+00:00", "2026-03-30T07:00:00+00:00"
    ]  # fmt: skip


def test_a_time_skipped_in_spring_runs_after_the_gap_and_a_repeated_one_runs_once() -> None:
    # New York skips 02:00-03:00 on 8 March 2026 and repeats 01:00-02:00 on 1 November.
    spring = cron("30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00")
    assert [iso(t, "America/New_York") for t in islice(spring.ticks_after(0), 2)] == [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"
    ]  # fmt: skip
    autumn = cron("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00")
    assert [iso(t, "America/New_York") for t in islice(autumn.ticks_after(0), 2)] == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"
    ]  # fmt: skip


def test_every_due_tick_within_the_grace_fires() -> None:
    schedule = every(1)
    now = BASE.anchor_ms + 5_500
    due = plan(schedule, BASE.anchor_ms + 2_000, now)
    assert due is not None
    assert due.fire == [BASE.anchor_ms + 3_000, BASE.anchor_ms + 4_000, BASE.anchor_ms + 5_000]
    assert (due.missed, due.through) == (0, BASE.anchor_ms + 5_000)
    assert plan(schedule, BASE.anchor_ms + 5_000, now) is None


def test_skip_runs_once_for_ticks_missed_past_the_grace() -> None:
    schedule = every(300)
    now = BASE.anchor_ms + 10 * 300_000 + MISFIRE_GRACE_MS + 1
    due = plan(schedule, 0, now)
    assert due is not None
    assert due.fire == [BASE.anchor_ms + 10 * 300_000]  # the newest; ticks 1-9 are missed
    assert due.missed == 9


def test_skip_fires_nothing_late_when_a_tick_within_the_grace_fires_anyway() -> None:
    schedule = every(300)
    now = BASE.anchor_ms + 10 * 300_000 + 1
    due = plan(schedule, 0, now)
    assert due is not None
    assert due.fire == [BASE.anchor_ms + 10 * 300_000]
    assert due.missed == 9


def test_catch_up_runs_the_newest_missed_ticks_up_to_its_bound() -> None:
    schedule = replace(every(300), misfire="catch_up", catch_up_max=3)
    now = BASE.anchor_ms + 10 * 300_000 + MISFIRE_GRACE_MS + 1
    due = plan(schedule, 0, now)
    assert due is not None
    assert due.fire == [BASE.anchor_ms + t * 300_000 for t in (8, 9, 10)]
    assert due.missed == 7
