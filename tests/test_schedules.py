"""Schedules end to end: written through the API (bad input refused naming the field), fired by
real `python -m scheduler` processes against a real Redis, one run per tick whichever replica
holds the lease, and the runs are real tasks a real worker runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from contracts import records
from contracts.records import Field
from devstack.processes import ROOT, Stack
from tests.helpers import ApiClient, wait_for

# A lease short enough that a follower takes over within one 1 s interval of the holder's death.
FAST_SCHEDULER = {
    "KUBETASKS_SCHEDULES_POLL_SECONDS": "0.1",
    "KUBETASKS_SCHEDULES_LEASE_SECONDS": "0.8",
}
EVERY_SECOND = {"name": "tick", "task": "sleep", "args": {"seconds": 0}, "interval_seconds": 1}


@pytest.fixture
def private(make_stack: Callable[..., Stack]) -> Iterator[tuple[Stack, ApiClient]]:
    stack = make_stack(FAST_SCHEDULER)
    stack.start_redis()
    stack.start_api()
    with ApiClient(base_url=stack.api_url, timeout=10) as client:
        yield stack, client


def runs(stack: Stack, schedule: str) -> list[tuple[int, int]]:
    """(tick, submitted at) of each task the schedule submitted, by tick."""
    found = []
    with redis.Redis.from_url(stack.redis_url) as client:
        for task_id in client.zrange(records.TASKS_INDEX, 0, -1):
            key, submitted = client.hmget(
                records.record_key(task_id.decode()), Field.IDEMPOTENCY_KEY, Field.SUBMITTED_AT
            )
            if key and key.decode().startswith(f"schedule:{schedule}:"):
                found.append((int(key.decode().rsplit(":", 1)[1]), int(submitted)))
    return sorted(found)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "61 * * * *", "interval_seconds": None}, "cron"),
        ({"cron": "0 9 * * *", "interval_seconds": None, "timezone": "Mars/Olympus"}, "timezone"),
        ({"interval_seconds": None}, "cron"),  # neither cron nor an interval
        ({"cron": "0 9 * * *"}, "cron"),  # both
        ({"task": "no_such_task"}, "task"),
        ({"args": {"seconds": -1}}, "args.seconds"),
        ({"queue": "nowhere"}, "queue"),
        ({"name": "Not A Name"}, "name"),
        ({"interval_seconds": 0.5}, "interval_seconds"),
        ({"misfire": "sometimes"}, "misfire"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(
    api: ApiClient, change: dict[str, Any], field: str
) -> None:
    response = api.post("/schedules", json={**EVERY_SECOND, **change})
    assert response.status_code == 422, response.text
    assert field in {problem["field"] for problem in response.json()["fields"]}, response.text
    assert api.get(f"/schedules/{EVERY_SECOND['name']}").status_code == 404


def test_a_schedule_is_created_listed_paused_changed_and_deleted(
    private: tuple[Stack, ApiClient],
) -> None:
    stack, api = private
    created = api.post("/schedules", json={**EVERY_SECOND, "paused": True})
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/schedules/tick"
    assert created.json()["next_run_at"] is None  # paused
    again = api.post("/schedules", json=EVERY_SECOND)
    assert (again.status_code, again.json()["error"]) == (409, "schedule_exists")

    stack.start_worker()
    scheduler = stack.start_scheduler()
    resumed = api.patch("/schedules/tick", json={"paused": False}).json()
    assert resumed["next_run_at"] is not None
    wait_for(lambda: api.get("/schedules/tick").json()["last_task_id"], 10, "a first run")
    first = api.get("/schedules/tick").json()
    assert api.wait_task(first["last_task_id"])["state"] == "SUCCESS"

    daily = api.patch("/schedules/tick", json={"cron": "0 9 * * *", "timezone": "Europe/Berlin"})
    assert daily.status_code == 200, daily.text
    assert (daily.json()["interval_seconds"], daily.json()["cron"]) == (None, "0 9 * * *")
    assert daily.json()["next_run_at"].endswith(("T07:00:00Z", "T08:00:00Z"))
    bad = api.patch("/schedules/tick", json={"task": None})
    assert bad.status_code == 422, bad.text

    assert [s["name"] for s in api.get("/schedules").json()["items"]] == ["tick"]
    next_run = 'kubetasks_schedule_next_run_timestamp_seconds{schedule="tick"}'
    assert scheduler.metrics_url
    assert next_run in httpx.get(scheduler.metrics_url).text
    assert api.delete("/schedules/tick").status_code == 204
    # A deleted schedule leaves no gauge behind (the late-schedule alert would fire on it).
    wait_for(lambda: next_run not in httpx.get(str(scheduler.metrics_url)).text, 10, "no gauge")
    gone = api.get("/schedules/tick")
    assert (gone.status_code, gone.json()["error"]) == (404, "schedule_not_found")


def test_two_schedulers_fire_each_tick_once_and_a_dead_holders_ticks_still_fire(
    private: tuple[Stack, ApiClient],
) -> None:
    stack, api = private
    one, other = stack.start_scheduler("scheduler"), stack.start_scheduler("scheduler2")
    assert api.post("/schedules", json=EVERY_SECOND).status_code == 201
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started > 15, 20, "15 s of runs")
    with redis.Redis.from_url(stack.redis_url) as client:
        holder = client.get(records.SCHEDULER_LEASE).decode()
    [leader] = [p for p in (one, other) if f"scheduler {holder} " in p.output()]
    leader.kill()
    wait_for(lambda: time.monotonic() - started > 30, 20, "30 s of runs")
    assert api.patch("/schedules/tick", json={"paused": True}).status_code == 200

    listed = api.get("/tasks", params={"schedule": "tick", "limit": 200}).json()["items"]
    assert {task["schedule"] for task in listed} == {"tick"}
    assert len(listed) == len(runs(stack, "tick"))
    mixed = api.get("/tasks", params={"schedule": "tick", "state": "SUCCESS"})
    assert mixed.status_code == 422, mixed.text
    assert [f["field"] for f in mixed.json()["fields"]] == ["schedule"]
    fired = runs(stack, "tick")
    ticks = [tick for tick, _ in fired]
    assert not [t for t, n in Counter(ticks).items() if n > 1], "a tick ran twice"
    assert 29 <= len(ticks) <= 31, ticks
    assert all(b - a == 1000 for a, b in pairwise(ticks)), "a tick is missing"
    gaps = [b - a for (_, a), (_, b) in pairwise(fired)]
    assert max(gaps) <= 2000, gaps


def test_declared_schedules_are_applied_idempotently_and_a_bad_one_stops_the_apply(
    private: tuple[Stack, ApiClient], tmp_path: Path
) -> None:
    stack, api = private
    declared = tmp_path / "schedules.json"

    def apply(*schedules: dict[str, Any], deadline: float = 30) -> subprocess.CompletedProcess[str]:
        declared.write_text(json.dumps(schedules))
        argv = [
            sys.executable, "-m", "scheduler.apply", str(declared),
            "--api-url", stack.api_url, "--deadline", str(deadline),
        ]  # fmt: skip
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)

    nightly = {"name": "nightly", "task": "sleep", "args": {"seconds": 0}, "cron": "0 3 * * *"}
    first = apply(EVERY_SECOND, nightly)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["tick: created", "nightly: created"]
    again = apply(EVERY_SECOND, {**nightly, "cron": "0 4 * * *"})
    assert again.stdout.splitlines() == ["tick: updated", "nightly: updated"], again.stderr
    assert [s["name"] for s in api.get("/schedules").json()["items"]] == ["nightly", "tick"]
    assert api.get("/schedules/nightly").json()["cron"] == "0 4 * * *"

    bad = apply({**nightly, "args": {"seconds": -1}})
    assert bad.returncode == 1
    assert "args.seconds" in bad.stderr and "trying again" not in bad.stdout
    unknown = apply({**nightly, "task": "not_published_yet"}, deadline=1)
    assert unknown.returncode == 1
    assert "trying again" in unknown.stdout and "giving up" in unknown.stderr
