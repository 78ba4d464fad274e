"""Bad input gets a 4xx JSON answer naming the problem; never a 500 or a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ApiClient


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
