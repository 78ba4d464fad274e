"""The worker's scripts, one execution at a time: start, progress, finish, retry, requeued,
defer and abandon; each outcome, the record it leaves and the listings it moves the task to."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from contracts import records, scripts
from contracts.records import State
from contracts.scripts import Named
from tests.scripts.conftest import NOW, TASK_ID, indexes, listed, message, run
from tests.scripts.test_submit_and_cancel import cancel, submit

LEASE = NOW + 60_000
REC = records.record_key(TASK_ID)


def start(
    r: redis.Redis,
    tag: str = "tag-1",
    *,
    token: str = "call-1",
    now: int = NOW,
    max_deliveries: int = 2,
) -> Any:
    return run(
        r,
        scripts.START,
        record=REC,
        id=TASK_ID,
        tag=tag,
        now=now,
        lease_until=LEASE,
        max_deliveries=max_deliveries,
        worker="w1",
        dead_ttl=100,
        pid=42,
        token=token,
    )


def finish(r: redis.Redis, tag: str = "tag-1", state: State = State.SUCCESS, **extra: str) -> Any:
    fields = {"result": "", "error_type": "", "error_message": "", "traceback": "", **extra}
    return run(
        r,
        scripts.FINISH,
        record=REC,
        id=TASK_ID,
        tag=tag,
        state=state.value,
        now=NOW + 5,
        ttl=30,
        **fields,
    )


def requeued(r: redis.Redis, tag: str = "tag-1") -> Any:
    return run(r, scripts.REQUEUED, record=REC, id=TASK_ID, tag=tag, now=NOW + 7)


def unacknowledged(r: redis.Redis, tag: str) -> None:
    """What kombu and fetch.lua hold for a delivered message."""
    r.zadd(records.UNACKED_INDEX, {tag: NOW / 1000})
    r.hset(records.UNACKED, tag, "[{}]")
    r.hset(records.INFLIGHT, tag, records.inflight_entry("default", "w1#a", TASK_ID))


def held(r: redis.Redis, tag: str) -> bool:
    found = (
        r.zscore(records.UNACKED_INDEX, tag) is not None,
        r.hexists(records.UNACKED, tag),
        r.hexists(records.INFLIGHT, tag),
    )
    assert len(set(found)) == 1, f"half acknowledged: {found}"
    return found[0]


@pytest.fixture
def waiting(r: redis.Redis) -> redis.Redis:
    submit(r)
    return r


@pytest.fixture
def running(waiting: redis.Redis) -> redis.Redis:
    assert start(waiting)[0] == "run"
    unacknowledged(waiting, "tag-1")
    return waiting


def test_start_runs_a_waiting_task(waiting: redis.Redis) -> None:
    assert start(waiting) == ["run", 1, "0"]
    record = waiting.hgetall(REC)
    assert {k: record[k] for k in ("state", "tag", "worker", "pid", "attempts", "deliveries")} == {
        "state": "STARTED", "tag": "tag-1", "worker": "w1", "pid": "42", "attempts": "1",
        "deliveries": "1",
    }  # fmt: skip
    assert record["started_at"] == str(NOW) and record["lease_until"] == str(LEASE)
    assert indexes(waiting) == listed(State.STARTED)


def test_a_start_sent_twice_answers_run_both_times(waiting: redis.Redis) -> None:
    """redis-py re-sends a call whose reply timed out: without its token, the second sending
    would find the lease the first one took and answer 'defer'."""
    assert start(waiting) == ["run", 1, "0"]
    assert start(waiting) == ["run", "1", "0"]
    assert waiting.hget(REC, "attempts") == "1"


def test_a_second_copy_waits_for_the_live_lease(running: redis.Redis) -> None:
    assert start(running, "tag-2", token="call-2") == ["defer", str(LEASE), "0"]
    assert running.hget(REC, "tag") == "tag-1"
    assert running.hget(REC, "attempts") == "1"


def test_a_copy_after_the_lease_ended_runs_as_the_next_attempt(running: redis.Redis) -> None:
    assert start(running, "tag-2", token="call-2", now=LEASE + 1) == ["run", 2, "0"]
    assert running.hmget(REC, "tag", "deliveries") == ["tag-2", "2"]


def test_start_skips_a_task_that_is_gone_or_ended(r: redis.Redis) -> None:
    assert start(r) == ["skip", "missing"]
    submit(r)
    cancel(r)
    assert start(r) == ["skip", "REVOKED"]
    assert r.hget(REC, "attempts") == "0"


def test_start_past_the_redelivery_cap_dead_letters_the_task(waiting: redis.Redis) -> None:
    assert start(waiting, max_deliveries=0)[0] == "run"
    assert requeued(waiting) == "PENDING"  # its pool process died
    assert start(waiting, "tag-2", token="call-2", max_deliveries=0) == ["deadletter", 1]
    record = waiting.hgetall(REC)
    assert record["state"] == "FAILURE" and record["error_type"] == "DeadLettered"
    assert "lease_until" not in record
    assert waiting.zscore(records.DEADLETTER, TASK_ID) == NOW
    assert 0 < waiting.ttl(REC) <= 100
    assert indexes(waiting) == listed(State.FAILURE)


def test_progress_is_recorded_only_for_the_lease_holder(running: redis.Redis) -> None:
    progress: dict[str, Named] = {"record": REC, "id": TASK_ID, "progress": '{"current":1}'}
    assert run(running, scripts.PROGRESS, tag="tag-1", **progress) == "STARTED"
    assert running.hget(REC, "progress") == '{"current":1}'
    assert run(running, scripts.PROGRESS, tag="tag-2", **progress) == "superseded"
    cancel(running)
    assert run(running, scripts.PROGRESS, tag="tag-1", **progress) == "REVOKED"


def test_finish_ends_a_success_and_acknowledges_its_message(running: redis.Redis) -> None:
    assert finish(running, result='"done"') == "SUCCESS"
    record = running.hgetall(REC)
    assert record["state"] == "SUCCESS" and record["result"] == '"done"'
    assert record["finished_at"] == str(NOW + 5)
    assert not {"args", "lease_until", "call"} & set(record)
    assert 0 < running.ttl(REC) <= 30
    assert indexes(running) == listed(State.SUCCESS)
    assert not held(running, "tag-1")
    assert finish(running, result='"done"') == "SUCCESS"  # sent twice: the same answer


def test_finish_records_a_failure_with_its_error(running: redis.Redis) -> None:
    failed = finish(
        running, state=State.FAILURE, error_type="ValueError", error_message="bad",
        traceback="Traceback ...",
    )  # fmt: skip
    assert failed == "FAILURE"
    record = running.hgetall(REC)
    assert (record["error_type"], record["error_message"]) == ("ValueError", "bad")
    assert record["traceback"] == "Traceback ..."
    assert indexes(running) == listed(State.FAILURE)
    assert not held(running, "tag-1")


def test_finish_of_a_delivery_without_the_lease_only_acknowledges(running: redis.Redis) -> None:
    unacknowledged(running, "tag-2")
    before = running.hgetall(REC)
    assert finish(running, "tag-2") == "STARTED"
    assert running.hgetall(REC) == before
    assert not held(running, "tag-2") and held(running, "tag-1")


def test_a_cancel_that_came_first_stands(running: redis.Redis) -> None:
    cancel(running)
    assert finish(running, result='"late"') == "REVOKED"
    assert "result" not in running.hgetall(REC)
    assert not held(running, "tag-1")


def test_retry_waits_for_the_backoff_with_the_new_message(running: redis.Redis) -> None:
    due = NOW + 3000
    new_message = message("t1-retry")
    retried = run(
        running, scripts.RETRY, record=REC, id=TASK_ID, tag="tag-1", due=due, list="default",
        message=new_message, error_type="TransientError", error_message="again",
    )  # fmt: skip
    assert retried == "RETRY"
    record = running.hgetall(REC)
    assert (record["state"], record["retries"], record["deliveries"]) == ("RETRY", "1", "0")
    assert record["due_at"] == str(due) and "lease_until" not in record
    assert running.zscore(records.DELAYED, TASK_ID) == due
    assert running.hget(records.DELAYED_MESSAGES, TASK_ID) == "default\n" + new_message
    assert indexes(running) == listed(State.RETRY)


def test_requeued_returns_a_task_whose_process_died_to_waiting(running: redis.Redis) -> None:
    assert requeued(running, "tag-2") == "STARTED"  # not the holder: nothing changes
    assert requeued(running) == "PENDING"
    record = running.hgetall(REC)
    assert record["queued_at"] == str(NOW + 7) and "lease_until" not in record
    assert record["attempts"] == "1"
    assert indexes(running) == listed(State.PENDING)


def test_defer_parks_one_copy_while_the_task_runs(running: redis.Redis) -> None:
    parked: dict[str, Named] = {"record": REC, "id": TASK_ID, "list": "default", "due": LEASE}
    assert run(running, scripts.DEFER, message=message("copy"), **parked) == "deferred"
    assert run(running, scripts.DEFER, message=message("copy"), **parked) == "deferred"
    assert running.zcard(records.DELAYED) == 1
    cancel(running)
    assert run(running, scripts.DEFER, message=message("copy"), **parked) == "gone"


def test_defer_parks_a_waiting_tasks_message_for_a_worker_that_can_validate_it(
    waiting: redis.Redis,
) -> None:
    parked: dict[str, Named] = {"record": REC, "id": TASK_ID, "list": "default", "due": LEASE}
    assert run(waiting, scripts.DEFER, message=message("copy"), **parked) == "deferred"
    assert waiting.zscore(records.DELAYED, TASK_ID) == LEASE
    assert waiting.hget(REC, "state") == "PENDING"  # parking does not touch the record
    waiting.delete(REC)
    assert run(waiting, scripts.DEFER, message=message("copy"), **parked) == "gone"


def test_a_damaged_record_fails_the_start_script_and_abandon_ends_the_task(
    waiting: redis.Redis,
) -> None:
    waiting.hset(REC, "attempts", "not a number")
    with pytest.raises(redis.ResponseError):
        start(waiting)
    unacknowledged(waiting, "tag-1")
    abandoned = run(
        waiting, scripts.ABANDON, record=REC, id=TASK_ID, tag="tag-1", now=NOW + 9, ttl=30,
        error_type="RecordScriptError", error_message="start.lua: ...",
    )  # fmt: skip
    assert abandoned == "PENDING"
    record = waiting.hgetall(REC)
    assert (record["state"], record["error_type"]) == ("FAILURE", "RecordScriptError")
    assert indexes(waiting) == listed(State.FAILURE)
    assert 0 < waiting.ttl(REC) <= 30
    assert not held(waiting, "tag-1")


def test_abandon_ends_a_record_too_damaged_to_reindex(waiting: redis.Redis) -> None:
    waiting.hdel(REC, "submitted_at")
    abandon: dict[str, Named] = {"record": REC, "id": TASK_ID, "tag": "t", "now": NOW, "ttl": 30}
    assert run(waiting, scripts.ABANDON, error_type="E", error_message="m", **abandon) == "PENDING"
    assert waiting.hget(REC, "state") == "FAILURE"
    assert run(waiting, scripts.ABANDON, error_type="E", error_message="m", **abandon) == "FAILURE"


def test_a_misspelt_name_is_an_error_not_a_nil(r: redis.Redis) -> None:
    """The generated prelude's tables refuse unknown names (scripts would otherwise write a
    field called 'nil', or read nothing)."""
    probe = scripts.Script("probe", (), None, (), scripts.PRELUDE + "return F.stat")
    with pytest.raises(redis.ResponseError, match="no field named stat"):
        run(r, probe)
