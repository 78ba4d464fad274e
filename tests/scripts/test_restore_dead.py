"""restore_dead.lua puts back at once the messages of a worker that stopped beating, under a
new tag, and lets the task it was running start again."""

from __future__ import annotations

import json
from typing import Any

import redis

from contracts import records, scripts
from contracts.catalogue import PRIORITY_STEPS
from contracts.records import State
from tests.scripts.conftest import NOW, TASK_ID, indexes, listed, message, run, tag_of
from tests.scripts.test_execution import REC, finish, start
from tests.scripts.test_queues import DEFAULT_LISTS, fetch
from tests.scripts.test_submit_and_cancel import submit

DEAD, ALIVE = "w1#a", "w2#b"
BEAT = 1000.0  # the live worker's last heartbeat (s); the dead one's is older than `since`


def restore(r: redis.Redis) -> Any:
    return run(r, scripts.RESTORE_DEAD, now=NOW + 50, since=BEAT - 1)


def running_on_a_dead_worker(r: redis.Redis) -> str:
    submit(r)
    fetch(r)  # as worker DEAD (tests.scripts.test_queues.fetch)
    tag = tag_of(message())
    assert start(r, tag)[0] == "run"
    r.zadd(records.WORKERS, {DEAD: BEAT - 100, ALIVE: BEAT})
    return tag


def test_a_dead_workers_running_task_goes_back_under_a_new_tag_and_waits(
    r: redis.Redis,
) -> None:
    tag = running_on_a_dead_worker(r)
    assert restore(r) == 1
    (back,) = r.lrange(records.queue_lists("default")[-1], 0, -1)  # its priority's list
    restored = json.loads(back)
    original = json.loads(message())
    assert restored["properties"]["delivery_tag"] == f"{tag}.r{NOW + 50}"
    restored["properties"]["delivery_tag"] = tag
    assert restored == original  # verbatim but for the tag
    assert not (
        r.hlen(records.UNACKED) or r.zcard(records.UNACKED_INDEX) or r.hlen(records.INFLIGHT)
    )
    record = r.hgetall(REC)
    assert (record["state"], record["queued_at"]) == ("PENDING", str(NOW + 50))
    assert "lease_until" not in record and indexes(r) == listed(State.PENDING)
    assert restore(r) == 0  # nothing left to put back


def test_the_frozen_worker_that_comes_back_finds_its_task_taken(r: redis.Redis) -> None:
    tag = running_on_a_dead_worker(r)
    restore(r)
    fetch(r)  # the new copy, now on any worker
    new_tag = f"{tag}.r{NOW + 50}"
    assert start(r, new_tag, token="call-2")[0] == "run"
    progress = {"record": REC, "id": TASK_ID, "progress": "{}"}
    assert run(r, scripts.PROGRESS, tag=tag, **progress) == "superseded"
    assert finish(r, tag, result='"late"') == "STARTED"  # refused: not the holder
    assert finish(r, new_tag, result='"on time"') == "SUCCESS"
    record = r.hgetall(REC)
    assert (record["result"], record["attempts"]) == ('"on time"', "2")


def test_live_workers_and_unnamed_entries_are_left_alone(r: redis.Redis) -> None:
    running_on_a_dead_worker(r)
    r.zadd(records.WORKERS, {DEAD: BEAT})  # it beats again
    assert restore(r) == 0
    r.hset(records.INFLIGHT, "other", records.inflight_entry("default", "", "t2"))
    r.zadd(records.WORKERS, {DEAD: BEAT - 100})
    assert restore(r) == 1  # DEAD's message; the entry naming no worker stays for kombu
    assert r.hexists(records.INFLIGHT, "other")


def test_a_message_kombu_recorded_goes_back_to_its_priority_list(r: redis.Redis) -> None:
    """kombu writes the record with Python's json (spaces after commas); priority 0 on the
    transport is the most urgent step, the queue's own list."""
    payload = json.loads(message("k1"))
    payload["properties"]["priority"] = 0
    r.hset(records.UNACKED, "kt", json.dumps([payload, "", "default"]))
    r.zadd(records.UNACKED_INDEX, {"kt": 1})
    r.hset(records.INFLIGHT, "kt", records.inflight_entry("default", DEAD, "k1"))
    assert restore(r) == 1
    (back,) = r.lrange(DEFAULT_LISTS[0], 0, -1)
    assert json.loads(back)["properties"]["delivery_tag"] == f"kt.r{NOW + 50}"


def test_the_prelude_names_the_lists_as_python_does(r: redis.Redis) -> None:
    probe = scripts.Script(
        "probe", (), None, ("step",), scripts.PRELUDE + "return queue_list('q', tonumber(ARGV[1]))"
    )
    lists = [run(r, probe, step=step) for step in PRIORITY_STEPS]
    assert lists == records.queue_lists("q")
