"""Bad input gets a 4xx JSON answer naming the problem; never a 500 or a traceback."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from redis import exceptions as redis_exceptions

from api.errors import ANSWERS
from api.exceptions import (
    BacklogFull,
    BodyTooLarge,
    DeadLetterNotFound,
    Forbidden,
    IdempotencyKeyReused,
    RedisUnavailable,
    ScheduleExists,
    ScheduleNotFound,
    TaskAlreadyEnded,
    TaskExpired,
    TaskNotFound,
    TooManyStreams,
    Unauthorized,
    WorkflowAlreadyEnded,
    WorkflowExpired,
    WorkflowNotFound,
)
from devstack.processes import Stack
from tests.conftest import client_for
from tests.helpers import ApiClient, sample, scrape, wait_for


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "abc"}, "type"),
        ({"type": 7}, "type"),
        ({"type": 1, "extra": True}, "extra"),
        ({"name": "sleep", "args": {"seconds": -1}}, "args.seconds"),
        ({"name": "sleep", "args": {"seconds": 1e12}}, "args.seconds"),
        ({"name": "sleep", "args": {"seconds": "soon"}}, "args.seconds"),
        ({"name": "sleep", "args": {"seconds": 1, "colour": "red"}}, "args.colour"),
        ({"name": "sleep"}, "args.seconds"),
        ({"name": "no-such-task"}, "name"),
        ({"name": "sleep", "args": {"seconds": 1}, "queue": "nope"}, "queue"),
        ({"name": "sleep", "args": {"seconds": 1}, "priority": 10}, "priority"),
        ({"name": "sleep", "args": {"seconds": 1}, "countdown": -5}, "countdown"),
        ({"name": "sleep", "args": {"seconds": 1}, "idempotency_key": "a b"}, "idempotency_key"),
        ({"name": "primes", "args": {"limit": 10**30}}, "args.limit"),
        ([1, 2, 3], "body"),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(api: ApiClient, body: object, field: str) -> None:
    response = api.post("/tasks", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid_request"
    assert field in [f["field"] for f in error["fields"]], error
    assert field in error["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 422),
        (b"\xff\xfe\xfa", 400),
        (b"", 422),
    ],
)
def test_unparseable_bodies_get_a_json_4xx(api: ApiClient, content: bytes, status: int) -> None:
    response = api.post("/tasks", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["message"]


def test_oversized_body_is_refused_before_it_is_read(api: ApiClient) -> None:
    big = b'{"name": "sleep", "args": {"note": "' + b"x" * 2_000_000 + b'"}}'
    response = api.post("/tasks", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_oversized_chunked_body_is_refused(api: ApiClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "sleep", "args": {"note": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}}'

    response = api.post("/tasks", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_cursor_and_filters_are_422(api: ApiClient) -> None:
    assert api.get("/tasks", params={"cursor": "garbage"}).status_code == 422
    assert api.get("/tasks", params={"state": "SLEEPING"}).status_code == 422
    assert api.get("/tasks", params={"name": "nope"}).status_code == 422
    assert api.get("/tasks", params={"limit": 0}).status_code == 422


def test_cancel_of_unknown_task_is_404(api: ApiClient) -> None:
    assert api.delete("/tasks/ffffffffffffffffffffffffffffffff").status_code == 404
    assert api.post("/tasks/ffffffffffffffffffffffffffffffff/cancel").status_code == 404


def test_openapi_docs_are_served(api: ApiClient) -> None:
    spec = api.get("/openapi.json").json()
    assert "/tasks" in spec["paths"]
    assert api.get("/docs").status_code == 200


KEY = "the-right-key"
RETRY_AFTER_SECONDS = 7
RECORD_TTL_SECONDS = 4
# What each header of the table must say on this stack (configured by the env below).
HEADER_VALUES = {"Retry-After": str(RETRY_AFTER_SECONDS), "WWW-Authenticate": "ApiKey"}
REJECTIONS = "kubetasks_api_rejections_total"
UNKNOWN_ID = "ffffffffffffffffffffffffffffffff"


def test_every_row_of_the_error_table_is_answered_and_documented_as_it_says(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        api_key=KEY,
        env={
            "KUBETASKS_RETRY_AFTER_SECONDS": str(RETRY_AFTER_SECONDS),
            "KUBETASKS_RECORD_TTL_SECONDS": str(RECORD_TTL_SECONDS),
            "KUBETASKS_QUEUE_MAX_BACKLOG": '{"cpu": 0}',
            "KUBETASKS_EVENTS_MAX_STREAMS": "1",
        },
    )
    redis = stack.start_redis()
    stack.start_api()
    worker = stack.start_worker(queues=["default"])
    produced: set[type[Exception] | int] = set()

    def expect(
        kind: type[Exception] | int, method: str, route: str | None, path: str, **kw: Any
    ) -> None:
        """The request gets the row's answer, counted and documented on its route (if it has
        one) as the row says; it sends the API key unless `key` says otherwise."""
        answer = ANSWERS[kind]
        rejections_before = scrape(f"{stack.api_url}/metrics")
        key = kw.pop("key", KEY)
        with client_for(stack, **({"X-API-Key": key} if key else {})) as client:
            response = client.request(method, path, **kw)
        assert response.status_code == answer.status, response.text
        body = response.json()
        assert body["error"] == answer.code
        assert body["message"]
        for header in answer.headers:
            assert response.headers[header.name] == HEADER_VALUES[header.name]
        rejections = scrape(f"{stack.api_url}/metrics")
        for reason in ("backlog_full", "redis_unavailable", "unauthorized", "too_large"):
            counted = sample(rejections, REJECTIONS, reason=reason) - sample(
                rejections_before, REJECTIONS, reason=reason
            )
            assert counted == (reason == answer.rejection), (kind, reason)
        if route is not None:
            documented = spec["paths"][route][method.lower()]["responses"][str(answer.status)]
            assert f"`{answer.code}`" in documented["description"]
            assert {h.name for h in answer.headers} <= set(documented.get("headers", {}))
        produced.add(kind)

    with client_for(stack, **{"X-API-Key": KEY}) as api:
        spec = api.get("/openapi.json").json()
        finished = api.submit("sleep", {"seconds": 0})
        api.wait_task(finished)
        expect(TaskAlreadyEnded, "DELETE", "/tasks/{task_id}", f"/tasks/{finished}")
        expect(TaskAlreadyEnded, "POST", "/tasks/{task_id}/cancel", f"/tasks/{finished}/cancel")
        flow = api.post("/workflows", json={"chain": [{"task": "sleep", "args": {"seconds": 0}}]})
        ended = f"/workflows/{flow.json()['workflow_id']}"
        wait_for(lambda: api.get(ended).json()["state"] == "SUCCESS", 10, "the workflow to end")
        expect(WorkflowAlreadyEnded, "POST", "/workflows/{workflow_id}/cancel", f"{ended}/cancel")
        worker.stop()

        expect(RequestValidationError, "POST", "/tasks", "/tasks", json={"name": "sleep"})
        assert api.post("/tasks", json={"name": "sleep"}).json()["fields"]
        expect(RequestValidationError, "GET", "/tasks", "/tasks?cursor=garbage")
        expect(Unauthorized, "GET", "/tasks/{task_id}", f"/tasks/{finished}", key=None)
        expect(Forbidden, "GET", "/queues", "/queues", key="wrong")
        expect(TaskNotFound, "GET", "/tasks/{task_id}", f"/tasks/{UNKNOWN_ID}")
        expect(TaskNotFound, "DELETE", "/tasks/{task_id}", f"/tasks/{UNKNOWN_ID}")
        expect(ScheduleNotFound, "GET", "/schedules/{name}", "/schedules/none")
        expect(ScheduleNotFound, "PATCH", "/schedules/{name}", "/schedules/none", json={})
        expect(ScheduleNotFound, "DELETE", "/schedules/{name}", "/schedules/none")
        expect(WorkflowNotFound, "GET", "/workflows/{workflow_id}", f"/workflows/{UNKNOWN_ID}")
        waiting = api.submit("sleep", {"seconds": 0}, countdown=600)
        with api.stream("GET", f"/tasks/{waiting}/events") as first:  # the one stream allowed
            lines = first.iter_lines()  # kept: a dropped iterator closes the stream
            assert next(lines).startswith("retry:")
            expect(TooManyStreams, "GET", "/events", f"/events?ids={waiting}")
            assert next(lines) == "" and next(lines).startswith("id: ")  # still streaming
        api.post(f"/tasks/{waiting}/cancel")
        hourly = {"name": "hourly", "task": "sleep", "args": {"seconds": 0}, "cron": "0 * * * *"}
        assert api.post("/schedules", json=hourly).status_code == 201
        expect(ScheduleExists, "POST", "/schedules", "/schedules", json=hourly)
        requeue = f"/deadletters/{UNKNOWN_ID}/requeue"
        expect(DeadLetterNotFound, "POST", "/deadletters/{task_id}/requeue", requeue)
        big = b'{"name": "sleep", "args": {"note": "' + b"x" * 2_000_000 + b'"}}'
        headers = {"content-type": "application/json"}
        expect(BodyTooLarge, "POST", "/tasks", "/tasks", content=big, headers=headers)
        expect(400, "POST", "/tasks", "/tasks", content=b"\xff\xfe\xfa", headers=headers)
        expect(404, "GET", None, "/nothing-here")
        expect(405, "PUT", None, "/tasks")
        keyed = {"name": "sleep", "args": {"seconds": 1}, "idempotency_key": "reused"}
        first = api.post("/tasks", json=keyed).json()["task_id"]
        assert api.post("/tasks", json=keyed).json() == {  # the same work: the first task
            "task_id": first, "state": "PENDING", "created": False,
        }  # fmt: skip
        other = {**keyed, "args": {"seconds": 2}}
        expect(IdempotencyKeyReused, "POST", "/tasks", "/tasks", json=other)
        assert api.post("/tasks", json=other).json()["task_id"] == first
        primes = {"name": "primes", "args": {"limit": 100}}
        expect(BacklogFull, "POST", "/tasks", "/tasks", json=primes)
        assert api.post("/tasks", json=primes).json()["queue"] == "cpu"
        wait_for(
            lambda: api.get(f"/tasks/{finished}").status_code == 410,
            RECORD_TTL_SECONDS + 10,
            "the finished task's record to expire",
        )
        expect(TaskExpired, "GET", "/tasks/{task_id}", f"/tasks/{finished}")
        wait_for(lambda: api.get(ended).status_code == 410, 10, "the workflow's record to expire")
        expect(WorkflowExpired, "GET", "/workflows/{workflow_id}", ended)

        redis.stop(signal.SIGKILL)
        expect(redis_exceptions.RedisError, "POST", "/tasks", "/tasks", json={"type": 0})
        expect(RedisUnavailable, "GET", "/readyz", "/readyz?deep=1")
        assert api.get("/readyz").status_code == 200
    assert produced == set(ANSWERS)


def test_openapi_documents_errors_only_in_the_tables_shape(api: ApiClient) -> None:
    spec = api.get("/openapi.json").json()
    statuses = {str(a.status) for a in ANSWERS.values()}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, documented in operation["responses"].items():
                if int(status) < 400:
                    continue
                assert status in statuses, (method, path, status)
                schema = documented["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_cancelling_twice_answers_200_both_times(api: ApiClient) -> None:
    # A countdown keeps the shared stack's worker from starting it.
    task_id = api.submit("sleep", {"seconds": 0}, countdown=600)
    for cancel in (api.delete(f"/tasks/{task_id}"), api.post(f"/tasks/{task_id}/cancel")):
        assert cancel.status_code == 200, cancel.text
        assert cancel.json() == {"task_id": task_id, "state": "REVOKED", "outcome": "revoked"}


def test_cancelling_a_failed_task_is_409(api: ApiClient) -> None:
    # The error table's test cancels one that succeeded; revoked is the only ending cancel accepts.
    task_id = api.submit("thumbnail", {"image_base64": "bm90IGFuIGltYWdl"})
    assert api.wait_task(task_id)["state"] == "FAILURE"
    response = api.delete(f"/tasks/{task_id}")
    assert response.status_code == 409
    assert response.json() == {
        "error": "task_finished",
        "message": f"task {task_id!r} already ended as FAILURE",
    }
