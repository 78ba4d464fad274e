"""make bench drops the tasks it queued without running them: messages and records, so that
no PENDING record without a message is left behind (issue 13: about 150,000 were)."""

from __future__ import annotations

from collections.abc import Callable

from bench.env import drop_queued, ready_messages, redis_client
from contracts import records
from contracts.records import State
from devstack.processes import Stack
from tests.conftest import client_for


def test_dropping_queued_tasks_leaves_no_orphaned_record(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        dropped = [api.submit("sleep", {"seconds": 0}) for _ in range(30)]
    r = redis_client(stack)
    drop_queued(r)
    assert ready_messages(r) == 0
    assert r.zcard(records.state_index(State.PENDING)) == 0
    assert not any(r.exists(records.record_key(task_id)) for task_id in dropped)
    assert r.zcard(records.TASKS_INDEX) == 0 and r.zcard(records.name_index("sleep")) == 0
