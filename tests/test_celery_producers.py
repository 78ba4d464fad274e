"""A team's own Celery app (tests/celery_producer.py, which imports nothing from worker/)
enqueues catalogue tasks straight into our queues: they are taken in, run like any task, show
in the API, and end in Celery's own result for the producer's AsyncResult."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import TaskRevokedError

from devstack.processes import Stack
from tests.celery_producer import producer
from tests.helpers import ApiClient, sample, scrape


@pytest.fixture
def team(stack: Stack) -> Iterator[Celery]:
    app = producer(stack.redis_url)
    yield app
    app.close()


def _rejected(stack: Stack, reason: str) -> float:
    worker = next(p for p in stack.processes if p.metrics_url)
    assert worker.metrics_url is not None
    return sample(scrape(worker.metrics_url), "kubetasks_tasks_rejected_total", reason=reason)


def _worker_log(stack: Stack) -> str:
    return next(p for p in stack.processes if p.metrics_url).output()


def test_send_task_with_keyword_arguments_runs_and_answers_the_producer(
    team: Celery, api: ApiClient
) -> None:
    result = team.send_task("sleep", kwargs={"seconds": 0.2, "note": "from celery"})
    assert result.get(timeout=30) == "from celery"  # Celery's own result, via its backend
    view = api.task(result.id)  # the same task id, in the API
    assert (view["state"], view["result"], view["attempts"]) == ("SUCCESS", "from celery", 1)
    assert view["progress"]["message"] == "done"


def test_send_task_with_one_positional_dict_runs(team: Celery, api: ApiClient) -> None:
    result = team.send_task("sleep", args=[{"seconds": 0, "note": "one dict"}])
    assert result.get(timeout=30) == "one dict"
    assert api.task(result.id)["state"] == "SUCCESS"


def test_a_countdown_waits_in_redis_with_its_record_and_can_be_cancelled(
    team: Celery, api: ApiClient, stack: Stack
) -> None:
    sleep = team.tasks["sleep"]
    waiting = sleep.apply_async(kwargs={"seconds": 0, "note": "later"}, countdown=3)
    view = api.wait_known(waiting.id)  # taken in at once
    assert view["state"] == "PENDING" and view["due_at"] is not None
    assert api.get("/queues").json()["delayed"] >= 1  # in kt:delayed, not in a worker's memory
    assert waiting.get(timeout=30) == "later"

    cancelled = sleep.apply_async(kwargs={"seconds": 0}, countdown=30)
    api.wait_known(cancelled.id)
    assert api.delete(f"/tasks/{cancelled.id}").status_code == 200
    with pytest.raises(TaskRevokedError):
        cancelled.get(timeout=10)
    # The producer sends the same message again: the task stays cancelled.
    again = team.send_task("sleep", kwargs={"seconds": 0}, task_id=cancelled.id)
    with pytest.raises(TaskRevokedError):
        again.get(timeout=10)
    assert api.task(cancelled.id)["state"] == "REVOKED"


def test_an_unknown_task_name_is_refused_visibly(
    team: Celery, api: ApiClient, stack: Stack
) -> None:
    before = _rejected(stack, "unknown_task")
    result = team.send_task("no_such_task", kwargs={"x": 1})
    view = api.wait_known(result.id)
    assert view["state"] == "FAILURE"
    assert view["error"]["type"] == "NotRegistered"
    assert "unknown task 'no_such_task'" in view["error"]["message"]
    with pytest.raises(Exception, match="unknown task 'no_such_task'"):
        result.get(timeout=10)
    assert _rejected(stack, "unknown_task") == before + 1
    lines = [line for line in _worker_log(stack).splitlines() if result.id in line]
    assert len(lines) == 1 and "refused" in lines[0], lines


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ({"kwargs": {"seconds": -1}}, "args.seconds: Input should be greater than or equal to 0"),
        ({"kwargs": {"seconds": 1, "extra": 2}}, "args.extra: Extra inputs are not permitted"),
        ({"args": [1, 2]}, "sleep takes keyword arguments or one positional dict"),
    ],
    ids=["out-of-range", "unknown-field", "positional"],
)
def test_invalid_arguments_are_refused_visibly(
    team: Celery, api: ApiClient, stack: Stack, sent: dict[str, Any], why: str
) -> None:
    before = _rejected(stack, "invalid_arguments")
    result = team.send_task("sleep", **sent)
    view = api.wait_known(result.id)
    assert view["state"] == "FAILURE" and view["error"]["type"] == "InvalidArguments"
    assert why in view["error"]["message"]
    assert view["attempts"] == 0
    with pytest.raises(Exception, match=re.escape(why)):
        result.get(timeout=10)
    assert _rejected(stack, "invalid_arguments") == before + 1


def test_a_second_delivery_of_an_adopted_task_runs_nothing_more(
    team: Celery, api: ApiClient, stack: Stack
) -> None:
    task_id = uuid.uuid4().hex
    first = team.send_task("sleep", kwargs={"seconds": 0.5}, task_id=task_id)
    team.send_task("sleep", kwargs={"seconds": 0.5}, task_id=task_id)
    assert first.get(timeout=30) is True
    view = api.wait_task(task_id)
    assert (view["state"], view["attempts"]) == ("SUCCESS", 1)
    succeeded = [
        line for line in _worker_log(stack).splitlines() if f"[{task_id}] succeeded" in line
    ]
    assert len(succeeded) == 1
