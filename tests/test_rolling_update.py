"""A rolling update: an old and a new release of one task run side by side, the new one taking
an argument the old one refuses. Nothing is lost, and no task runs on a worker whose version of
the task rejects its arguments (the rule in docs/tasks.md, "Rolling updates")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import redis

from contracts import scripts
from contracts.records import now_ms
from contracts.settings import get_settings
from contracts.submission import submit_call
from devstack.processes import Stack
from tests.helpers import ApiClient, wait_for

OLD = '["tests.rollout.old"]'
NEW = '["tests.rollout.new"]'


def _takes_shout(api: ApiClient) -> bool:
    entry = next(e for e in api.get("/catalogue").json() if e["name"] == "rollout_echo")
    return "shout" in entry["args_schema"]["properties"]


def _results(api: ApiClient, ids: list[str]) -> list[dict[str, Any]]:
    done = [api.wait_task(task_id, timeout=60) for task_id in ids]
    assert all(task["state"] == "SUCCESS" for task in done), done
    return [task["result"] for task in done]


def test_old_and_new_workers_side_by_side(make_stack: Callable[..., Stack]) -> None:
    # A version stays live for 30 s after its last worker stops: long enough to stop the new
    # worker, submit for its version and start it again.
    stack = make_stack({"KUBETASKS_WORKER_HEARTBEAT_MAX_AGE_SECONDS": "30"})
    stack.start_redis()
    stack.start_api()
    old = stack.start_worker("old", KUBETASKS_TASK_MODULES=OLD)
    with ApiClient(base_url=stack.api_url, timeout=10) as api:
        wait_for(lambda: not _takes_shout(api), 10, "the old release in the catalogue")
        refused = api.post("/tasks", json={"name": "rollout_echo", "args": {"shout": True}})
        assert refused.status_code == 422, refused.text
        assert {f["field"] for f in refused.json()["fields"]} == {"args.text", "args.shout"}
        before = [api.submit("rollout_echo", {"text": f"a{i}"}) for i in range(5)]

        new = stack.start_worker("new", KUBETASKS_TASK_MODULES=NEW)
        wait_for(lambda: _takes_shout(api), 10, "the new release in the catalogue")
        shouted = [api.submit("rollout_echo", {"text": f"b{i}", "shout": True}) for i in range(10)]
        plain = [api.submit("rollout_echo", {"text": f"c{i}"}) for i in range(10)]
        assert {r["release"] for r in _results(api, shouted)} == {"new"}
        assert {r["text"] for r in _results(api, plain)} == {f"c{i}" for i in range(10)}
        assert {r["release"] for r in _results(api, before)} <= {"old", "new"}

        # Only the old worker runs now, and the new version is still the one submits are
        # validated against: the old worker passes these on until a new worker is back.
        new.stop(timeout=30)
        waiting = [api.submit("rollout_echo", {"text": f"d{i}", "shout": True}) for i in range(3)]
        wait_for(lambda: "passed on for a worker of that version" in old.output(), 20, "hand-off")
        assert {api.task(t)["state"] for t in waiting} == {"PENDING"}
        stack.start_worker("new", KUBETASKS_TASK_MODULES=NEW)
        assert _results(api, waiting) == [{"release": "new", "text": f"D{i}"} for i in range(3)]

        # A version no live worker runs: the old worker runs the task and fails it, saying why.
        orphan = _submit_validated_by(stack, "0123456789abcdef", {"text": "e", "shout": True})
        failed = api.wait_task(orphan, timeout=30)
        assert (failed["state"], failed["error"]["type"]) == ("FAILURE", "UnservedVersion"), failed
        assert "version 0123456789abcdef of rollout_echo" in failed["error"]["message"]
        assert old.alive()


def _submit_validated_by(stack: Stack, version: str, args: dict[str, object]) -> str:
    """Queue a task as an API that validated it against `version` would (submit.lua)."""
    task_id = uuid.uuid4().hex
    named = submit_call(
        get_settings(), name="rollout_echo", task_id=task_id, args=args, queue="default",
        priority=0, now=now_ms(), due=0, version=version, idempotency_key=None,
    )  # fmt: skip
    keys, argv = scripts.SUBMIT.bind(**named)
    with redis.Redis.from_url(stack.redis_url) as client:
        client.register_script(scripts.SUBMIT.source)(keys=keys, args=argv)
    return task_id
