"""Workflows on a real stack: chains pass results on, a chord's callback gets its group's, a
failure stops what waits for it, a cancel stops the rest, a worker killed between two steps
neither loses the next step nor runs it twice; and bad requests are 422s naming the field."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from devstack.processes import Stack
from tests.conftest import FAST_ENV, client_for
from tests.helpers import ApiClient, kill_tree

TERMINAL = {"SUCCESS", "FAILURE", "REVOKED"}


def add(a: float | None = None, b: float = 0, **step: Any) -> dict[str, Any]:
    """An `add` step; without `a`, it takes the previous step's result as `a`."""
    if a is None:
        return {"task": "add", "args": {"b": b}, "input": "a", **step}
    return {"task": "add", "args": {"a": a, "b": b}, **step}


def submit(api: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/workflows", json=body)
    assert response.status_code == 202, response.text
    submitted: dict[str, Any] = response.json()
    assert response.headers["Location"] == f"/workflows/{submitted['workflow_id']}"
    return submitted


def wait_workflow(
    api: ApiClient,
    workflow_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda w: w["state"] in TERMINAL,
    timeout: float = 30,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = api.get(f"/workflows/{workflow_id}").json()
        if until(view):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow {workflow_id} never got there: {view}")
        time.sleep(0.05)


def states(view: dict[str, Any]) -> list[str]:
    return [step["state"] for step in view["steps"]]


def test_a_chain_passes_each_result_to_the_next_step(api: ApiClient) -> None:
    submitted = submit(api, {"chain": [add(1, 2), add(b=3), add(b=4)]})
    assert submitted["state"] == "PENDING" and len(submitted["task_ids"]) == 3
    view = wait_workflow(api, submitted["workflow_id"])
    assert (view["state"], view["result"]) == ("SUCCESS", 10)
    assert states(view) == ["SUCCESS"] * 3
    assert [step["after"] for step in view["steps"]] == [[], [0], [1]]
    assert view["counts"]["SUCCESS"] == 3 and view["finished_at"]
    # Each step is an ordinary task too, with the argument its predecessor gave it.
    last = api.task(submitted["task_ids"][2])
    assert (last["name"], last["result"], last["attempts"]) == ("add", 10, 1)
    assert last["workflow"] == submitted["workflow_id"]


def test_a_group_of_twenty_and_a_chord_callback_that_totals_them(api: ApiClient) -> None:
    members = [add(i, 0) for i in range(20)]
    chord = {"chord": members, "then": {"task": "total", "input": "numbers"}}
    submitted = submit(api, chord)
    view = wait_workflow(api, submitted["workflow_id"])
    assert (view["state"], view["result"]) == ("SUCCESS", sum(range(20)))
    assert view["steps"][20]["after"] == list(range(20))
    group = submit(api, {"group": members[:3]})
    assert wait_workflow(api, group["workflow_id"])["result"] == [0, 1, 2]


def test_a_failed_step_stops_its_chain_and_a_group_runs_every_member(api: ApiClient) -> None:
    # total() takes a list; the 3 that add() gives it fails validation in the worker.
    failing = {"task": "total", "input": "numbers"}
    chain = submit(api, {"chain": [add(1, 2), failing, add(b=1)]})
    view = wait_workflow(api, chain["workflow_id"])
    assert view["state"] == "FAILURE" and view["result"] is None
    assert states(view) == ["SUCCESS", "FAILURE", "REVOKED"]
    unrun = api.task(chain["task_ids"][2])
    assert unrun["attempts"] == 0 and unrun["error"]["type"] == "NotRun"

    # The group's other member runs; the step after the group does not.
    body = {
        "chain": [add(1, 2), {"group": [add(b=1), failing]}, {"task": "total", "input": "numbers"}]
    }
    view = wait_workflow(api, submit(api, body)["workflow_id"])
    assert view["state"] == "FAILURE"
    assert states(view) == ["SUCCESS", "SUCCESS", "FAILURE", "REVOKED"]
    assert api.task(view["steps"][1]["task_id"])["result"] == 4


def test_cancel_stops_the_running_step_and_the_waiting_ones_never_run(api: ApiClient) -> None:
    body = {"chain": [{"task": "sleep", "args": {"seconds": 30}}, add(1, 1), add(b=1)]}
    submitted = submit(api, body)
    workflow_id = submitted["workflow_id"]
    running = wait_workflow(api, workflow_id, lambda w: w["steps"][0]["state"] == "STARTED")
    assert running["state"] == "STARTED"
    cancelled = api.post(f"/workflows/{workflow_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "workflow_id": workflow_id,
        "state": "REVOKED",
        "outcome": "revoked",
    }
    view = wait_workflow(api, workflow_id)
    assert view["state"] == "REVOKED" and states(view) == ["REVOKED"] * 3
    assert api.delete(f"/workflows/{workflow_id}").status_code == 200  # a second cancel
    for task_id in submitted["task_ids"][1:]:  # never started
        assert api.task(task_id)["attempts"] == 0

    done = submit(api, {"chain": [add(1, 1)]})
    wait_workflow(api, done["workflow_id"])
    refused = api.post(f"/workflows/{done['workflow_id']}/cancel")
    assert refused.status_code == 409 and refused.json()["error"] == "workflow_finished"


def test_cancelling_one_step_revokes_the_steps_that_wait_for_it(api: ApiClient) -> None:
    body = {"chain": [{"task": "sleep", "args": {"seconds": 30}}, add(1, 1)]}
    submitted = submit(api, body)
    first, second = submitted["task_ids"]
    api.wait_task(first, {"STARTED"})
    assert api.post(f"/tasks/{first}/cancel").status_code == 200
    view = wait_workflow(api, submitted["workflow_id"])
    assert view["state"] == "REVOKED" and states(view) == ["REVOKED", "REVOKED"]
    assert api.task(second)["error"]["type"] == "NotRun"


def test_a_worker_killed_between_two_steps_runs_the_next_step_exactly_once(
    make_stack: Callable[..., Stack],
) -> None:
    """SIGKILL the whole worker while step 0 runs (its end, and so step 1's queueing, never
    happened) and again the moment step 0 has ended (step 1 is queued, maybe taken). Either
    way a second worker finishes the workflow, and each step succeeds once."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    max_age = float(FAST_ENV["KUBETASKS_WORKER_HEARTBEAT_MAX_AGE_SECONDS"])
    with client_for(stack) as api:
        for kill_when in ("STARTED", "SUCCESS"):
            victim = stack.start_worker(f"victim-{kill_when.lower()}", concurrency=1)
            sleep = {"task": "sleep", "args": {"seconds": 2}}
            body = {"chain": [sleep, sleep, add(1, 2), add(b=3)]}
            submitted = submit(api, body)
            first = submitted["task_ids"][0]
            api.wait_task(first, {kill_when})
            kill_tree(victim)
            survivor = stack.start_worker(f"survivor-{kill_when.lower()}", concurrency=1)
            view = wait_workflow(api, submitted["workflow_id"], timeout=max_age + 40)
            assert (view["state"], view["result"]) == ("SUCCESS", 6), view
            tasks = [api.task(task_id) for task_id in submitted["task_ids"]]
            # Step 0 ran again only if it was cut off; steps 2 and 3 ran once each.
            assert tasks[0]["attempts"] == (2 if kill_when == "STARTED" else 1)
            assert tasks[1]["attempts"] in (1, 2)  # 2: the victim had taken it
            assert [t["attempts"] for t in tasks[2:]] == [1, 1]
            assert all(t["state"] == "SUCCESS" for t in tasks)
            survivor.stop()
        # Nothing is left over: no message of a step queued twice waits anywhere.
        queue = api.queue("default")
        assert (queue["ready"], queue["in_flight"]) == (0, 0)


def test_workflow_events_stream_each_change_until_the_end(api: ApiClient) -> None:
    submitted = submit(api, {"chain": [{"task": "sleep", "args": {"seconds": 1}}, add(1, 1)]})
    seen = []
    with api.stream("GET", f"/workflows/{submitted['workflow_id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(httpx.Response(200, content=line[6:]).json()["state"])
    assert seen[-1] == "SUCCESS" and "STARTED" in seen


def test_recent_workflows_are_listed_newest_first(api: ApiClient) -> None:
    older = submit(api, {"chain": [add(1, 1)]})["workflow_id"]
    newer = submit(api, {"group": [add(1, 1)]})["workflow_id"]
    listed = [w["workflow_id"] for w in api.get("/workflows", params={"limit": 50}).json()["items"]]
    assert listed.index(newer) < listed.index(older)


def _refusal(api: ApiClient, body: Any) -> list[dict[str, str]]:
    response = api.post("/workflows", json=body)
    assert response.status_code == 422, response.text
    fields: list[dict[str, str]] = response.json()["fields"]
    return fields


@pytest.mark.parametrize(
    ("body", "where", "why"),
    [
        ({"chain": []}, "chain", "at least 1"),
        ({"chain": [add(1, 2), {"task": "nope"}]}, "chain.1.task", "unknown task 'nope'"),
        ({"group": [add(1, 2), {"task": "add", "args": {"a": "x", "b": 1}}]}, "group.1.args.a", ""),
        ({"chain": [add(b=1)]}, "chain.0.input", "no step before"),
        ({"chain": [add(1, 2), {**add(1, 1), "input": "c"}]}, "chain.1.input", "no argument 'c'"),
        ({"chain": [add(1, 2), {**add(1, 1), "input": "a"}]}, "chain.1.args.a", "previous step"),
        ({"chain": [add(1, 2)], "extra": 1}, "extra", "Extra inputs"),
        ({"pipeline": [add(1, 2)]}, "body", "one of task, chain, group or chord"),
        ({"chain": [add(1, 2), 7]}, "chain.1", "one of task, chain"),
        ({"chord": [add(1, 2)]}, "then", "required"),
        ({"chain": [add(1, 2)], "queue": "nope"}, "queue", "Extra inputs"),
        ({"chain": [{**add(1, 2), "queue": "nope"}]}, "chain.0.queue", "unknown queue"),
    ],
)  # fmt: skip
def test_bad_workflows_are_422s_naming_the_field(
    api: ApiClient, body: Any, where: str, why: str
) -> None:
    fields = _refusal(api, body)
    assert any(f["field"].startswith(where) and why in f["message"] for f in fields), fields


def test_workflows_nested_too_deep_or_too_large_are_refused(api: ApiClient) -> None:
    deep: dict[str, Any] = add(1, 2)
    for _ in range(6):
        deep = {"chain": [deep]}
    assert any("nested deeper than 5" in f["message"] for f in _refusal(api, deep))
    wide = {"group": [add(1, 1)] * 501}
    assert any("at most 500 steps" in f["message"] for f in _refusal(api, wide))


def test_unknown_workflows_are_404s(api: ApiClient) -> None:
    for method, path in (
        ("GET", "/workflows/nope"),
        ("GET", "/workflows/nope/events"),
        ("POST", "/workflows/nope/cancel"),
        ("DELETE", "/workflows/nope"),
    ):
        response = api.request(method, path)
        assert response.status_code == 404 and response.json()["error"] == "workflow_not_found"
