"""adopt.lua takes in a task a Celery producer queued itself; the tasks it adopts end in
Celery's own result too (celery_result in _lib.lua)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from contracts import records, scripts
from contracts.records import State
from tests.scripts.conftest import NOW, TASK_ID, indexes, listed, message, run
from tests.scripts.test_execution import REC, finish, start
from tests.scripts.test_submit_and_cancel import submit

FOREIGN_TAG = "producer-tag"


def adopt(r: redis.Redis, *, due: int = 0, error: str = "", known: bool = True) -> Any:
    r.zadd(records.UNACKED_INDEX, {FOREIGN_TAG: 1})  # the producer's message, delivered
    r.hset(records.UNACKED, FOREIGN_TAG, "[{}]")
    r.hset(records.INFLIGHT, FOREIGN_TAG, records.inflight_entry("default", "w1#a", TASK_ID))
    return run(
        r, scripts.ADOPT, record=REC, id=TASK_ID, name="sleep" if known else "nope",
        queue="default", priority=9, args='{"seconds":0}', now=NOW, due=due, list="default",
        message=message(), tag=FOREIGN_TAG, error_type="InvalidArguments" if error else "",
        error_message=error, known=int(known), ttl=50,
    )  # fmt: skip


def acknowledged(r: redis.Redis) -> bool:
    return not (r.hexists(records.UNACKED, FOREIGN_TAG) or r.hexists(records.INFLIGHT, FOREIGN_TAG))


def celery_meta(r: redis.Redis) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(str(r.get(records.celery_result_key(TASK_ID))))
    return meta


def test_an_adopted_task_waits_next_in_its_list_with_a_record(r: redis.Redis) -> None:
    r.rpush("default", "older")
    assert adopt(r) == "adopted"
    assert r.lindex("default", -1) == message()  # where the producer's message was: next
    record = r.hgetall(REC)
    assert (record["state"], record["celery_result"]) == ("PENDING", "50")
    assert indexes(r) == listed(State.PENDING)
    assert acknowledged(r)


def test_an_adopted_countdown_waits_in_the_delayed_set(r: redis.Redis) -> None:
    assert adopt(r, due=NOW + 3000) == "adopted"
    assert r.zscore(records.DELAYED, TASK_ID) == NOW + 3000
    assert r.llen("default") == 0


def test_a_refused_task_ends_at_once_and_tells_the_producer(r: redis.Redis) -> None:
    assert adopt(r, error="args.seconds: bad") == "refused"
    record = r.hgetall(REC)
    assert (record["state"], record["error_type"]) == ("FAILURE", "InvalidArguments")
    assert indexes(r) == listed(State.FAILURE)
    assert 0 < r.ttl(REC) <= 50 and 0 < r.ttl(records.celery_result_key(TASK_ID)) <= 50
    assert celery_meta(r)["status"] == "FAILURE"
    assert celery_meta(r)["result"] == {
        "exc_type": "InvalidArguments", "exc_message": ["args.seconds: bad"], "exc_module": None,
    }  # fmt: skip
    assert r.llen("default") == 0 and acknowledged(r)


def test_an_unknown_name_is_not_listed_by_name(r: redis.Redis) -> None:
    assert adopt(r, error="unknown task", known=False) == "refused"
    assert indexes(r) == {records.TASKS_INDEX, records.state_index(State.FAILURE)}


def test_another_delivery_changes_nothing(r: redis.Redis) -> None:
    adopt(r)
    before = r.hgetall(REC)
    assert adopt(r) == "known"
    assert r.hgetall(REC) == before and r.llen("default") == 1 and acknowledged(r)
    r.delete(REC)  # the record expired; the tombstone stays
    assert adopt(r) == "expired"
    assert not r.exists(REC)


def test_an_adopted_task_ends_in_celerys_result(r: redis.Redis) -> None:
    adopt(r)
    pubsub = r.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(records.celery_result_key(TASK_ID))
    start(r)
    finish(r, result='{"n": 1}')
    meta = celery_meta(r)
    assert meta == {
        "status": "SUCCESS", "result": {"n": 1}, "traceback": None, "children": [],
        "date_done": datetime.fromtimestamp((NOW + 5) / 1000, UTC).isoformat(),
        "task_id": TASK_ID,
    }  # fmt: skip
    announced = [
        m for m in iter(lambda: pubsub.get_message(timeout=1), None) if m["type"] == "message"
    ]
    assert [json.loads(m["data"]) for m in announced] == [meta]


def test_a_task_submitted_through_the_api_writes_no_celery_result(r: redis.Redis) -> None:
    submit(r)
    start(r)
    finish(r, result="1")
    assert not r.exists(records.celery_result_key(TASK_ID))


@pytest.mark.parametrize(
    "ms", [0, 951_782_400_123, 1_709_164_800_000, 4_102_444_799_999, NOW], ids=str
)
def test_result_times_are_written_as_python_writes_them(r: redis.Redis, ms: int) -> None:
    probe = scripts.Script(
        "probe",
        (),
        None,
        ("ms",),
        scripts.PRELUDE + open_lib() + "return iso_utc(tonumber(ARGV[1]))",
    )
    assert run(r, probe, ms=ms) == datetime.fromtimestamp(ms / 1000, UTC).isoformat(
        timespec="microseconds"
    )


def open_lib() -> str:
    return (Path(scripts.__file__).parent / "lua" / "_lib.lua").read_text()
