"""register.lua and contracts.catalogue.current: which version of a task submissions are
validated against, through rolling updates, rollbacks and scale to zero."""

from __future__ import annotations

import redis

from contracts import records
from contracts.catalogue import Registration, TaskSpec, current, registration_field
from contracts.settings import Settings
from worker.catalogue import publish

from .conftest import NOW

MINUTE = 60_000


def spec(limit: int = 60, schema_max: int = 10) -> TaskSpec:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": schema_max}}}
    return TaskSpec("count", "default", limit, "Counts.", schema)


def register(r: redis.Redis, specs: list[TaskSpec], *, now: int, started: int) -> int:
    """worker.catalogue.publish at a fixed time, with a retention of 30 minutes."""
    settings = Settings(catalogue_retention_seconds=30 * 60)
    return publish(r, specs, settings, started, now=now)


def published(r: redis.Redis) -> list[Registration]:
    specs = r.hgetall(records.CATALOGUE)
    started = r.hgetall(records.CATALOGUE_STARTED)
    seen = r.hgetall(records.CATALOGUE_SEEN)
    return [
        Registration(TaskSpec.from_json(raw), int(started[f]), int(seen[f]))
        for f, raw in specs.items()
    ]


def test_a_spec_survives_its_round_trip_and_its_version_covers_all_of_it() -> None:
    assert TaskSpec.from_json(spec().to_json()) == spec()
    assert spec().version == spec().version
    assert len({spec().version, spec(limit=61).version, spec(schema_max=11).version}) == 3


def test_a_rolling_update_switches_with_the_first_new_worker(r: redis.Redis) -> None:
    old, new = spec(schema_max=10), spec(schema_max=20)
    register(r, [old], now=NOW, started=NOW - 10 * MINUTE)
    assert current(published(r), NOW - MINUTE)["count"] == old
    register(r, [new], now=NOW + 1000, started=NOW)
    register(r, [old], now=NOW + 2000, started=NOW - 10 * MINUTE)  # old pods still beat
    assert current(published(r), NOW - MINUTE)["count"] == new


def test_a_rollback_switches_back(r: redis.Redis) -> None:
    old, new = spec(schema_max=10), spec(schema_max=20)
    register(r, [old], now=NOW, started=NOW - 10 * MINUTE)
    register(r, [new], now=NOW + 1000, started=NOW)
    register(r, [old], now=NOW + 5000, started=NOW + 4000)  # old code started again
    assert current(published(r), NOW)["count"] == old


def test_a_live_version_wins_over_a_newer_one_whose_workers_are_gone(r: redis.Redis) -> None:
    old, canary = spec(schema_max=10), spec(schema_max=20)
    register(r, [canary], now=NOW, started=NOW)
    register(r, [old], now=NOW + 5 * MINUTE, started=NOW - 10 * MINUTE)
    assert current(published(r), NOW + 4 * MINUTE)["count"] == old


def test_with_no_live_worker_the_task_stays_known(r: redis.Redis) -> None:
    register(r, [spec()], now=NOW, started=NOW)
    assert current(published(r), NOW + 10 * MINUTE) == {"count": spec()}


def test_versions_no_worker_published_since_the_horizon_are_forgotten(r: redis.Redis) -> None:
    old, new = spec(schema_max=10), spec(schema_max=20)
    register(r, [old], now=NOW, started=NOW)
    assert register(r, [new], now=NOW + 31 * MINUTE, started=NOW + 31 * MINUTE) == 1
    assert [p.spec for p in published(r)] == [new]
    for key in (records.CATALOGUE, records.CATALOGUE_STARTED, records.CATALOGUE_SEEN):
        assert r.hkeys(key) == [registration_field(new)]
