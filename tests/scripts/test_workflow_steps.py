"""A workflow's transitions, one script call at a time: a step's end queues the steps it held
back exactly once (however often the end is sent), a failure or a cancel revokes what waits for
it, and the last step to end ends the workflow."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from api.schemas import Chain, Chord, WorkflowTask
from api.workflows import plan, submit_call
from contracts import records, scripts
from contracts.catalogue import TaskSpec
from contracts.records import State, StepPart, WorkflowField, step_field
from contracts.settings import Settings
from tests.scripts.conftest import NOW, run

ADD = TaskSpec("add", "default", 10, "Adds.", {"type": "object", "properties": {}})


def submitted(r: redis.Redis, root: Chain | Chord) -> tuple[str, list[str]]:
    planned = plan(root, max_steps=50)
    workflow_id, task_ids, named = submit_call(
        Settings(), planned, [(ADD, "default")] * len(planned.steps), NOW
    )
    assert run(r, scripts.WORKFLOW_SUBMIT, **named) == ["created"]
    return workflow_id, task_ids


def started(r: redis.Redis, task_id: str, tag: str) -> Any:
    return run(
        r,
        scripts.START,
        record=records.record_key(task_id),
        id=task_id,
        tag=tag,
        now=NOW + 1,
        lease_until=NOW + 60_000,
        max_deliveries=2,
        worker="w1",
        dead_ttl=100,
        pid=42,
        token=tag,
    )


def finished(r: redis.Redis, task_id: str, tag: str, state: State, result: str = "") -> Any:
    return run(
        r,
        scripts.FINISH,
        record=records.record_key(task_id),
        id=task_id,
        tag=tag,
        state=state.value,
        now=NOW + 2,
        ttl=30,
        result=result,
        error_type="" if state == State.SUCCESS else "Boom",
        error_message="",
        traceback="",
    )


LISTS = records.queue_lists("default")


def queued_ids(r: redis.Redis) -> list[str]:
    return [json.loads(m)["headers"]["id"] for q in LISTS for m in r.lrange(q, 0, -1)]


def step(i: int, **extra: Any) -> WorkflowTask:
    return WorkflowTask(task="add", args={"b": i}, **extra)


def test_a_step_queues_the_next_once_however_often_its_end_is_sent(r: redis.Redis) -> None:
    workflow_id, (first, second) = submitted(r, Chain(chain=[step(1), step(2, input="a")]))
    assert queued_ids(r) == [first]
    assert r.hget(records.record_key(second), records.Field.WAITING) == "1"
    r.delete(*LISTS)
    assert started(r, first, "tag-1")[0] == "run"
    for _ in range(2):  # the worker re-sends a call it got no answer to
        assert finished(r, first, "tag-1", State.SUCCESS, "41") == "SUCCESS"
    assert queued_ids(r) == [second]
    record = r.hgetall(records.record_key(second))
    assert records.Field.WAITING not in record and record[records.Field.QUEUED_AT] == str(NOW + 2)
    # The step starts with its predecessor's result as its `input` argument.
    assert started(r, second, "tag-2") == ["run", 1, "0", "a", "41"]
    assert finished(r, second, "tag-2", State.SUCCESS, "43") == "SUCCESS"
    wf = r.hgetall(records.workflow_key(workflow_id))
    assert (wf[WorkflowField.STATE], wf[WorkflowField.OPEN]) == ("SUCCESS", "0")
    assert r.ttl(records.workflow_key(workflow_id)) == 30
    assert not r.exists(records.workflow_messages_key(workflow_id))


def test_a_chord_callback_waits_for_every_member_and_takes_their_results(
    r: redis.Redis,
) -> None:
    root = Chord(chord=[step(0), step(1), step(2)], then=step(9, input="numbers"))
    _, (*members, callback) = submitted(r, root)
    assert sorted(queued_ids(r)) == sorted(members)
    r.delete(*LISTS)
    for n, member in enumerate(reversed(members)):
        started(r, member, f"m{n}")
        finished(r, member, f"m{n}", State.SUCCESS, f'"r{2 - n}"')
        assert queued_ids(r) == ([callback] if n == 2 else [])
    assert started(r, callback, "cb")[3:] == ["numbers", '["r0","r1","r2"]']


def test_a_failed_step_revokes_every_step_after_it_and_ends_the_workflow(r: redis.Redis) -> None:
    root = Chain(chain=[step(0), Chord(chord=[step(1), step(2)], then=step(3))])
    workflow_id, ids = submitted(r, root)
    r.delete(*LISTS)
    started(r, ids[0], "t0")
    finished(r, ids[0], "t0", State.SUCCESS, "1")
    assert sorted(queued_ids(r)) == sorted(ids[1:3])  # the chord's members
    started(r, ids[1], "t1")
    finished(r, ids[1], "t1", State.FAILURE)
    # The group's other member still runs; the callback never will.
    callback = r.hgetall(records.record_key(ids[3]))
    assert (callback[records.Field.STATE], callback[records.Field.ERROR_TYPE]) == (
        "REVOKED",
        "NotRun",
    )
    wf = records.workflow_key(workflow_id)
    assert r.hget(wf, WorkflowField.STATE) == "PENDING"  # the member is still out
    started(r, ids[2], "t2")
    finished(r, ids[2], "t2", State.SUCCESS, "2")
    assert r.hget(wf, WorkflowField.STATE) == "FAILURE"
    assert r.hget(wf, step_field("3", StepPart.STATE)) == "REVOKED"


@pytest.mark.parametrize("how", ["workflow", "step"])
def test_a_cancel_revokes_the_waiting_steps(r: redis.Redis, how: str) -> None:
    workflow_id, ids = submitted(r, Chain(chain=[step(0), step(1), step(2)]))
    started(r, ids[0], "t0")
    if how == "workflow":
        outcome = run(r, scripts.WORKFLOW_CANCEL, id=workflow_id, now=NOW + 3, ttl=30)
    else:
        record = records.record_key(ids[0])
        outcome = run(r, scripts.CANCEL, record=record, id=ids[0], now=NOW + 3, ttl=30)
    assert outcome == ["revoked", "PENDING" if how == "workflow" else "STARTED"]
    assert [r.hget(records.record_key(i), records.Field.STATE) for i in ids] == ["REVOKED"] * 3
    assert r.hget(records.workflow_key(workflow_id), WorkflowField.STATE) == "REVOKED"
    # The running step's end changes nothing now.
    assert finished(r, ids[0], "t0", State.SUCCESS, "1") == "REVOKED"
    assert queued_ids(r) == [ids[0]]  # only step 0's own message, taken by no one here
