"""submit.lua and cancel.lua: what each outcome writes, and what it leaves alone."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from contracts import records, scripts
from contracts.records import State
from tests.scripts.conftest import NOW, TASK_ID, indexes, listed, message, run


def submit(
    r: redis.Redis,
    task_id: str = TASK_ID,
    *,
    idem: str = "",
    due: int = 0,
    max_backlog: int = 100,
    args: str = '{"seconds":0}',
    schedule: str = "",
) -> Any:
    return run(
        r,
        scripts.SUBMIT,
        record=records.record_key(task_id),
        lists=records.queue_lists("default"),
        id=task_id,
        name="sleep",
        queue="default",
        priority=0,
        args=args,
        now=NOW,
        idem=idem,
        idem_ttl=60,
        list="default",
        message=message(task_id),
        due=due,
        max_backlog=max_backlog,
        schedule=schedule,
    )


def cancel(r: redis.Redis, task_id: str = TASK_ID) -> Any:
    return run(
        r, scripts.CANCEL, record=records.record_key(task_id), id=task_id, now=NOW + 1, ttl=30
    )


def test_submit_writes_the_record_its_listings_and_the_message(r: redis.Redis) -> None:
    assert submit(r) == ["created", TASK_ID]
    record = r.hgetall(records.record_key(TASK_ID))
    assert record == {
        "name": "sleep",
        "queue": "default",
        "priority": "0",
        "args": '{"seconds":0}',
        "state": "PENDING",
        "submitted_at": str(NOW),
        "attempts": "0",
        "retries": "0",
        "deliveries": "0",
        "version": "1",
    }
    assert r.ttl(records.record_key(TASK_ID)) == -1  # a waiting task is never forgotten
    assert indexes(r) == listed(State.PENDING)
    assert r.lrange("default", 0, -1) == [message(TASK_ID)]


def test_a_schedules_run_names_it_and_is_listed_among_its_runs(r: redis.Redis) -> None:
    assert submit(r, schedule="nightly") == ["created", TASK_ID]
    assert r.hget(records.record_key(TASK_ID), "schedule") == "nightly"
    assert r.zrange(records.schedule_index("nightly"), 0, -1, withscores=True) == [(TASK_ID, NOW)]


def test_a_countdown_waits_in_the_delayed_set(r: redis.Redis) -> None:
    due = NOW + 5000
    assert submit(r, due=due) == ["created", TASK_ID]
    assert r.llen("default") == 0
    assert r.zscore(records.DELAYED, TASK_ID) == due
    assert r.hget(records.DELAYED_MESSAGES, TASK_ID) == "default\n" + message(TASK_ID)
    assert r.hget(records.record_key(TASK_ID), "due_at") == str(due)


def test_a_resent_submit_answers_as_the_first_and_queues_one_message(r: redis.Redis) -> None:
    assert submit(r, idem="key-1") == ["created", TASK_ID]
    assert submit(r, idem="key-1") == ["created", TASK_ID]  # not "existing": it is that task
    assert r.llen("default") == 1


def test_an_idempotency_key_answers_with_its_first_task(r: redis.Redis) -> None:
    assert submit(r, "first", idem="key-1") == ["created", "first"]
    assert submit(r, "second", idem="key-1") == ["existing", "first"]
    assert not r.exists(records.record_key("second"))
    assert str(r.get(records.idempotency_key("key-1"))).startswith("first ")
    assert 0 < r.ttl(records.idempotency_key("key-1")) <= 60
    assert r.hget(records.record_key("first"), "idempotency_key") == "key-1"
    assert r.llen("default") == 1


def test_an_idempotency_key_used_for_other_arguments_is_a_conflict(r: redis.Redis) -> None:
    assert submit(r, "first", idem="key-1") == ["created", "first"]
    other = submit(r, "second", idem="key-1", args='{"seconds":5}')
    assert other == ["conflict", "first"]
    assert not r.exists(records.record_key("second")) and r.llen("default") == 1


def test_a_full_queue_refuses_and_writes_nothing(r: redis.Redis) -> None:
    submit(r, "first")
    assert submit(r, "second", idem="key-2", max_backlog=1) == ["full", "1"]
    assert not r.exists(records.record_key("second"), records.idempotency_key("key-2"))
    assert indexes(r, "second") == set()
    assert r.llen("default") == 1


def test_cancel_revokes_a_waiting_task_and_drops_its_delayed_message(r: redis.Redis) -> None:
    submit(r, due=NOW + 5000)
    assert cancel(r) == ["revoked", "PENDING"]
    record = r.hgetall(records.record_key(TASK_ID))
    assert record["state"] == "REVOKED" and record["finished_at"] == str(NOW + 1)
    assert 0 < r.ttl(records.record_key(TASK_ID)) <= 30
    assert indexes(r) == listed(State.REVOKED)
    assert r.zcard(records.DELAYED) == 0 and r.hlen(records.DELAYED_MESSAGES) == 0


def test_a_second_cancel_answers_as_the_first(r: redis.Redis) -> None:
    submit(r)
    assert cancel(r) == ["revoked", "PENDING"]
    assert cancel(r) == ["revoked", "REVOKED"]
    assert indexes(r) == listed(State.REVOKED)


def test_cancel_leaves_a_task_that_ended_otherwise(r: redis.Redis) -> None:
    submit(r)
    r.hset(records.record_key(TASK_ID), "state", "SUCCESS")
    before = r.hgetall(records.record_key(TASK_ID))
    assert cancel(r) == ["terminal", "SUCCESS"]
    assert r.hgetall(records.record_key(TASK_ID)) == before


def test_cancel_tells_an_expired_task_from_one_never_submitted(r: redis.Redis) -> None:
    assert cancel(r) == ["missing", ""]
    r.zadd(records.TASKS_INDEX, {TASK_ID: NOW})  # the tombstone a finished task leaves
    assert cancel(r) == ["expired", ""]


def test_each_change_is_published_with_the_record_and_its_version(r: redis.Redis) -> None:
    listener = r.pubsub()  # type: ignore[no-untyped-call]
    listener.subscribe(records.EVENTS_CHANNEL)
    assert listener.get_message(timeout=5)["type"] == "subscribe"  # in effect from here
    r.set(records.EVENTS_LISTENING, 1, ex=60)  # as the API's subscriber says it listens
    submit(r)
    cancel(r)
    published = []
    while (message := listener.get_message(timeout=1)) is not None:
        published.append(json.loads(message["data"]))
    listener.close()
    assert [(p["id"], p["version"], p["record"]["state"]) for p in published] == [
        (TASK_ID, 1, "PENDING"),
        (TASK_ID, 2, "REVOKED"),
    ]
    # What a view shows, and no more: the arguments (up to a megabyte) stay in Redis.
    assert "args" not in published[0]["record"] and published[1]["record"]["version"] == "2"
    assert abs(int(published[0]["at"]) / 1e6 - time.time()) < 60  # Redis's clock, in µs
