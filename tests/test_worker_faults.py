"""Worker processes die, stop or are misconfigured: what the system promises in each case."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from contracts import records
from devstack.processes import ROOT, Stack
from tests.conftest import client_for
from tests.helpers import ApiClient, programmatic_worker, run_flaky_as, wait_for


def _kill_each_attempt(api: ApiClient, task_id: str, attempts: int) -> None:
    for attempt in range(1, attempts + 1):

        def running(view: dict[str, Any], n: int = attempt) -> bool:
            return bool(view["state"] == "STARTED" and view["attempts"] == n)

        os.kill(api.wait_task(task_id, running)["worker_pid"], signal.SIGKILL)


def test_poison_message_lands_in_dead_letters_and_can_be_requeued_or_discarded(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(env={"KUBETASKS_MAX_REDELIVERIES": "2"})
    stack.start_redis()
    stack.start_api()
    stack.start_worker()
    with client_for(stack) as api:
        poison = api.submit("sleep", {"seconds": 20})
        _kill_each_attempt(api, poison, 3)  # the first delivery and two redeliveries

        dead = api.wait_task(poison, {"FAILURE"})
        assert dead["error"]["type"] == "DeadLettered"
        assert dead["attempts"] == 3
        listed = api.get("/deadletters").json()["items"]
        assert [t["task_id"] for t in listed] == [poison]
        assert api.get("/queues").json()["dead_letters"] == 1

        assert api.post(f"/deadletters/{poison}/requeue").status_code == 202
        api.wait_task(poison, lambda t: t["state"] == "STARTED" and t["attempts"] == 4)
        assert api.get("/deadletters").json()["items"] == []
        assert api.delete(f"/tasks/{poison}").status_code == 200  # no need to wait 20 s

        second = api.submit("sleep", {"seconds": 20})
        _kill_each_attempt(api, second, 3)
        api.wait_task(second, {"FAILURE"})
        assert api.delete(f"/deadletters/{second}").status_code == 200
        assert api.get("/deadletters").json()["items"] == []
        assert api.delete(f"/deadletters/{second}").status_code == 404


def test_killed_pool_process_is_redelivered_and_counted(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    stack.start_worker()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 2})
        _kill_each_attempt(api, task_id, 1)
        done = api.wait_task(task_id, timeout=30)
        assert done["state"] == "SUCCESS"
        assert done["attempts"] == 2


def test_a_task_raising_a_redis_error_of_its_own_fails_once(
    make_stack: Callable[..., Stack],
) -> None:
    """Only an outage of the records' Redis puts a message back; a task's own Redis errors are
    its failures (they used to requeue it forever)."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    setup = (
        "import redis\n"
        "def broken(args, ctx):\n"
        "    raise redis.ConnectionError('the task cache is down')\n"
    ) + run_flaky_as("broken")
    programmatic_worker(stack, "own-errors", setup=setup)
    with client_for(stack) as api:
        view = api.wait_task(api.submit("flaky", {"failures": 0}))
    assert view["state"] == "FAILURE", view
    assert view["error"] == {
        "type": "ConnectionError", "message": "the task cache is down", "traceback": None,
    }  # fmt: skip
    assert view["attempts"] == 1


def test_a_record_script_error_fails_the_task_instead_of_requeueing_it(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 0})
        r = redis.Redis.from_url(stack.redis_url)
        r.hset(records.record_key(task_id), records.Field.DELIVERIES, "damaged")
        worker = stack.start_worker()
        view = api.wait_task(task_id)
        assert view["state"] == "FAILURE", view
        assert view["error"]["type"] == "RecordScriptError"
        assert view["error"]["message"].startswith("start.lua:")
        assert view["attempts"] == 0
        # Acknowledged, not redelivered: the worker runs the next task.
        assert api.wait_task(api.submit("sleep", {"seconds": 0}))["state"] == "SUCCESS"
    assert r.hlen(records.UNACKED) == 0
    assert worker.output().count(f"task {task_id} failed in a record script") == 1


def test_worker_refuses_a_visibility_timeout_shorter_than_a_time_limit(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(env={"KUBETASKS_VISIBILITY_TIMEOUT_SECONDS": "20"})
    stack.start_redis()
    with pytest.raises(RuntimeError) as refused:
        stack.start_worker()
    assert "KUBETASKS_VISIBILITY_TIMEOUT_SECONDS=20 must exceed" in str(refused.value)


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        ("from worker.app import app, check_serializers\n"
         "app.conf.accept_content = ['json', 'pickle']\n"
         "check_serializers(app)",
         "only JSON serialization is allowed"),
        # A key prefix (say, for a shared Redis) would move kombu's unacknowledged set away from
        # the one finish.lua acknowledges in.
        ("from worker.app import app\n"
         "from worker.broker import check_transport_options\n"
         "app.conf.broker_transport_options['global_keyprefix'] = 'shared:'\n"
         "check_transport_options(app.conf.broker_transport_options)",
         "every success would be redelivered"),
    ],
    ids=["pickle", "unacked-key-prefix"],
)  # fmt: skip
def test_unsafe_worker_configuration_is_refused(code: str, refusal: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert refusal in result.stderr


def test_worker_logs_to_stdout_and_to_the_configured_file(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    logfile = tmp_path / "logs" / "worker.log"
    stack = make_stack(env={"KUBETASKS_WORKER_LOGFILE": str(logfile)})
    stack.start_redis()
    stack.start_api()
    worker = stack.start_worker()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 0})
        api.wait_task(task_id)
    wait_for(lambda: task_id in logfile.read_text(), 10, "the task in the log file")
    assert f"Task sleep[{task_id}] succeeded" in logfile.read_text()
    assert f"Task sleep[{task_id}] succeeded" in worker.output()  # stdout too


def test_each_pool_process_keeps_its_own_single_redis_connection(
    make_stack: Callable[..., Stack],
) -> None:
    """The real worker_process_init hook in a real prefork pool: each pool process opens its own
    connection (a child using its parent's socket would read the parent's replies) and keeps
    just that one, instead of a pool's checkout on every call."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    setup = (
        "import os, time\n"
        "from worker.records import worker_records\n"
        "def report(args, ctx):\n"
        "    time.sleep(0.5)  # both pool processes take one\n"
        "    records = worker_records()\n"
        "    return {'pid': os.getpid(), 'single': records.single_connection,\n"
        "            'connection': records.client.client_id()}\n"
    ) + run_flaky_as("report")
    programmatic_worker(stack, "pool", setup=setup)
    with client_for(stack) as api:
        ids = [api.submit("flaky", {"failures": 0}) for _ in range(6)]
        results = [api.wait_task(task_id)["result"] for task_id in ids]
    by_pid = {r["pid"]: r for r in results}
    assert len(by_pid) == 2, results  # both pool processes ran tasks
    assert all(r["single"] for r in results)
    connections: dict[int, set[int]] = {r["pid"]: set() for r in results}
    for r in results:
        connections[r["pid"]].add(r["connection"])
    assert all(len(c) == 1 for c in connections.values()), connections  # one each, kept
    assert len(set.union(*connections.values())) == 2  # and not shared
